"""Choose a model's instance thresholds on validation images, as StarDist's training does.

The thresholds that turn probabilities into objects (seed, foreground, minimum
size) are tied to the network that made the probabilities: after training, or
fine-tuning, they are chosen again on the validation images. Probabilities are
predicted once per image; every combination of a small grid is then scored
(mean AP over IoU 0.5–0.9, pooled). The model's own thresholds are scored too
and kept unless a combination beats them, so that one small validation image
does not move them on a tie.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import asdict

import numpy as np

from napari_segnet.metrics import evaluate
from napari_segnet.postprocess import InstanceSettings, probabilities_to_instances
from napari_segnet.progress import Progress, drain

SEED_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
FOREGROUND_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MIN_SIZES = (15, 25, 40, 60, 90)


def iter_tune_thresholds(
    model,
    pairs,
    *,
    device=None,
    seeds=SEED_THRESHOLDS,
    foregrounds=FOREGROUND_THRESHOLDS,
    min_sizes=MIN_SIZES,
) -> Generator[Progress, None, tuple[InstanceSettings, dict]]:
    """Yield progress; return the best thresholds on ``pairs`` and how they scored.

    Parameters
    ----------
    model : SegNet
        A model whose ``config.instance_method`` is ``"watershed"``.
    pairs : list of napari_segnet.training.data.Pair
        Validation images, normalised as the model reads them, and their labels.
    device : torch.device, optional
        Where the network runs.
    seeds, foregrounds, min_sizes : sequences
        The grid (see :class:`~napari_segnet.postprocess.InstanceSettings`).

    Returns
    -------
    (InstanceSettings, dict)
        The thresholds, and ``{"grid", "mean_ap_before", "mean_ap", "ap50",
        "settings"}``: the grid, the scores of the model's own thresholds and of
        the chosen ones, and the chosen ones as a dict.

    Raises
    ------
    ValueError
        Without validation images, or for a model of another instance method.

    """
    from napari_segnet.inference.plane import instance_settings_of
    from napari_segnet.inference.tiling import iter_predict_tiled

    if not pairs:
        raise ValueError("Thresholds are chosen on validation images, and there are none.")
    if model.config.instance_method != "watershed":
        raise ValueError(
            f"Only the watershed's thresholds are chosen here, not those of "
            f"{model.config.instance_method!r}."
        )
    model.eval()
    probabilities = []
    for k, pair in enumerate(pairs):
        yield Progress(k, len(pairs), "choosing thresholds")
        outputs = drain(iter_predict_tiled(model, pair.image, device=device))
        probabilities.append(outputs["instance"])
    truths = [pair.labels for pair in pairs]

    def scores(settings: InstanceSettings) -> tuple[float, float]:
        found = [probabilities_to_instances(p, settings) for p in probabilities]
        pooled = evaluate(truths, found)["pooled"]
        return float(np.mean([row["ap"] for row in pooled.values()])), pooled[0.5]["ap"]

    own = instance_settings_of(model)
    best, (best_mean, best_ap50) = own, scores(own)
    before = best_mean
    grid = list(itertools.product(seeds, foregrounds, min_sizes))
    for k, (seed, foreground, min_size) in enumerate(grid):
        yield Progress(k, len(grid), "choosing thresholds")
        settings = InstanceSettings(seed, foreground, min_size)
        mean_ap, ap50 = scores(settings)
        if mean_ap > best_mean:
            best, best_mean, best_ap50 = settings, mean_ap, ap50
    summary = {
        "grid": {"seed": list(seeds), "foreground": list(foregrounds), "min_size": list(min_sizes)},
        "mean_ap_before": before,
        "mean_ap": best_mean,
        "ap50": best_ap50,
        "settings": asdict(best),
    }
    return best, summary
