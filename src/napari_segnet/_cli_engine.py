"""Sub-commands of the command line that run the network: segment, train, evaluate, models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda", "mps")


def add_commands(commands, common: argparse.ArgumentParser) -> None:
    """Register the engine's sub-commands on the ``napari-segnet`` parser."""
    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument(
        "--model", default=None, help="bundled model name or model file (default: nuclei)"
    )
    engine.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps"
    )
    engine.add_argument("--channel", default=None, help="channel index or name to segment")
    engine.add_argument("--tile", type=int, default=512, help="tile size in pixels (512)")
    engine.add_argument(
        "--diameter",
        type=float,
        default=None,
        help="typical object diameter, to rescale to the model's training size",
    )
    engine.add_argument("--diameter-unit", choices=("px", "um"), default="px")
    engine.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        default="auto",
        help="objects darker than the background (brightfield, H&E): "
        "auto decides from each image's histogram",
    )

    segment = commands.add_parser(
        "segment",
        parents=[common, engine],
        help="segment images, write labels and measurements",
        description="Writes DIR/<stem>_labels.tif and, unless --no-measure, "
        "DIR/<stem>_measurements.csv for every INPUT.",
    )
    segment.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    segment.add_argument("--out", required=True, type=Path, metavar="DIR")
    segment.add_argument("--no-measure", action="store_true", help="write labels only")
    segment.set_defaults(command="segment", run=run_segment)

    train = commands.add_parser(
        "train",
        parents=[common],
        help="train a model on image/mask pairs",
        description="Pairs share a file stem: images/<stem>.tif and masks/<stem>.tif. A "
        "validation split is held out; the model with the best validation AP is kept.",
    )
    train.add_argument("--images", required=True, type=Path)
    train.add_argument("--masks", required=True, type=Path)
    train.add_argument("--out", required=True, type=Path, metavar="MODEL_FILE")
    train.add_argument("--encoder", default="compact")
    train.add_argument("--encoder-weights", type=Path, help="local ImageNet weights (.pth)")
    train.add_argument("--freeze-encoder", action="store_true")
    train.add_argument("--from", dest="start_from", help="fine-tune this model (name or file)")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--steps-per-epoch", type=int, default=100)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--crop", type=int, default=256)
    train.add_argument("--learning-rate", type=float, default=None)
    train.add_argument("--validation-fraction", type=float, default=0.15)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--resume", type=Path, help="a .resume.pt file written by a previous run")
    train.add_argument("--device", default="auto")
    train.set_defaults(command="train", run=run_train)

    evaluate = commands.add_parser(
        "evaluate",
        parents=[common, engine],
        help="AP, precision, recall, F1, PQ on a labelled set",
    )
    evaluate.add_argument("--images", required=True, type=Path)
    evaluate.add_argument("--masks", required=True, type=Path)
    evaluate.add_argument("--json", type=Path, help="also write the metrics to this file")
    evaluate.set_defaults(command="evaluate", run=run_evaluate)

    models = commands.add_parser("models", parents=[common], help="list bundled and user models")
    models.set_defaults(command="models", run=run_models)


def _progress_bar(total: int, description: str):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        disable=None,
    )


def _load(args):
    from napari_segnet.inference.devices import select_device
    from napari_segnet.models import load_model
    from napari_segnet.models.bundled import resolve_model

    device = select_device(args.device)
    model, _ = load_model(resolve_model(args.model), device=device, fuse=True)
    return model, device


def _settings(args):
    from napari_segnet.inference.segment import SegmentSettings

    if args.tile < 32:
        raise ValueError("--tile must be at least 32 pixels.")
    invert = {"auto": None, "yes": True, "no": False}[args.invert]
    return SegmentSettings(
        invert=invert,
        channel=args.channel,
        diameter=args.diameter,
        diameter_unit=args.diameter_unit,
        tile=args.tile,
    )


def _segment_with_bar(image, model, settings, device, name: str):
    from napari_segnet.inference.segment import iter_segment

    bar = _progress_bar(1000, name)
    events = iter_segment(image, model, settings, device=device)
    try:
        while True:
            event = next(events)
            bar.total = event.total
            bar.n = event.done
            bar.refresh()
    except StopIteration as stop:
        return stop.value
    finally:
        bar.close()


def run_segment(args: argparse.Namespace) -> int:
    """``napari-segnet segment``: labels (and measurements) for every input."""
    from napari_segnet.cli import _measure_every_channel, _prepare_output_folder
    from napari_segnet.io import read_image, write_labels
    from napari_segnet.measure import write_csv

    _prepare_output_folder(args.out / "x")
    model, device = _load(args)
    settings = _settings(args)
    failures = 0
    for path in args.inputs:
        try:
            image = read_image(path)
            result = _segment_with_bar(image, model, settings, device, path.name)
            stem = path.name.split(".")[0]
            spatial = "".join(a for a in result.axes if a in "ZYX")
            spacing = (
                image.spacing if image.spacing and len(image.spacing) == len(spatial) else None
            )
            write_labels(
                args.out / f"{stem}_labels.tif",
                result.labels,
                axes=result.axes,
                spacing=spacing,
                time_interval=image.pixel_size.get("T"),
            )
            n = int(result.labels.max())
            if not args.no_measure:
                table = _measure_every_channel(result.labels, result.axes, image, spacing)
                if result.classes:
                    classes = dict(
                        zip(
                            result.classes["label"],
                            zip(result.classes["class"], result.classes["class_probability"]),
                        )
                    )
                    table["class"] = [classes[label][0] for label in table["label"]]
                    table["class_probability"] = [classes[label][1] for label in table["label"]]
                write_csv(table, args.out / f"{stem}_measurements.csv")
            print(f"{path.name}: {n} objects", file=sys.stderr)
        except (ValueError, OSError) as error:
            failures += 1
            print(f"napari-segnet: error: {error}", file=sys.stderr)
    return 1 if failures else 0


def run_train(args: argparse.Namespace) -> int:
    """``napari-segnet train``: fit a model and keep the best one."""
    from napari_segnet.inference.devices import select_device
    from napari_segnet.models.bundled import resolve_model
    from napari_segnet.training.data import load_pairs, split_pairs
    from napari_segnet.training.loop import TrainSettings, iter_train
    from napari_segnet.training.session import model_and_pairs

    device = select_device(args.device)
    model, pairs = model_and_pairs(
        resolve_model(args.start_from) if args.start_from else None,
        lambda percentiles: load_pairs(args.images, args.masks, percentiles=percentiles),
        encoder=args.encoder,
        name=None if args.start_from else args.out.stem,
        encoder_weights=args.encoder_weights,
    )
    train, validation = split_pairs(pairs, args.validation_fraction)
    settings = TrainSettings(
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        crop=args.crop,
        freeze_encoder=args.freeze_encoder,
        seed=args.seed,
        learning_rate=args.learning_rate or (1e-3 if args.start_from else 3e-3),
    )
    from napari_segnet.cli import _prepare_output_folder

    _prepare_output_folder(args.out)
    print(
        f"Training on {len(train)} images, validating on {len(validation)}, on {device}."
        if not validation or {p.name for p in validation}.isdisjoint(p.name for p in train)
        else f"Training on the first {1 - args.validation_fraction:.0%} of each of "
        f"{len(pairs)} images, validating on the rest, on {device}.",
        file=sys.stderr,
    )
    provenance = {
        "images": str(args.images),
        "masks": str(args.masks),
        "from": args.start_from,
        "validation_images": sorted({p.name for p in validation}),
    }
    bar = _progress_bar(settings.epochs * settings.steps_per_epoch, "training")
    result = None
    events = iter_train(
        model,
        train,
        validation,
        settings,
        out=args.out,
        device=device,
        resume=args.resume,
        provenance=provenance,
    )
    try:
        while True:
            event = next(events)
            if event.stage == "training":
                bar.n = event.done
                bar.set_postfix(loss=f"{event.info['loss']:.3f}", refresh=True)
            else:
                bar.write(
                    f"epoch {event.done}: AP@0.5 {event.info['ap50']:.3f}, "
                    f"mean AP {event.info['ap_mean']:.3f}"
                )
    except StopIteration as stop:
        result = stop.value
    finally:
        bar.close()
    print(
        f"Best mean AP {result['best_ap_mean']:.3f} (epoch {result['best_epoch']}); "
        f"model written to {args.out}",
        file=sys.stderr,
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``napari-segnet evaluate``: metrics of a model on image/mask pairs."""
    from napari_segnet.io import read_image
    from napari_segnet.metrics import evaluate
    from napari_segnet.training.data import pair_paths

    pairs = pair_paths(args.images, args.masks)
    model, device = _load(args)
    settings = _settings(args)
    truths, predictions = [], []
    for _, image_path, mask_path in pairs:
        result = _segment_with_bar(read_image(image_path), model, settings, device, image_path.name)
        predictions.append(result.labels)
        truths.append(read_image(mask_path).data)
    metrics = evaluate(truths, predictions)
    print(
        f"{len(pairs)} images; pooled over images (StarDist conventions), "
        "and AP averaged per image:"
    )
    print(f"{'IoU':>5} {'AP':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'PQ':>6} {'AP/img':>7}")
    for threshold, row in metrics["pooled"].items():
        mean_ap = metrics["per_image_mean"][threshold]["ap"]
        print(
            f"{threshold:5.2f} {row['ap']:6.3f} {row['precision']:6.3f} {row['recall']:6.3f} "
            f"{row['f1']:6.3f} {row['pq']:6.3f} {mean_ap:7.3f}"
        )
    if args.json:
        from napari_segnet.io import atomic_path

        serialisable = {
            k: ({str(t): r for t, r in v.items()} if isinstance(v, dict) else v)
            for k, v in metrics.items()
        }
        with atomic_path(args.json) as temporary:
            temporary.write_text(json.dumps(serialisable, indent=2))
    return 0


def run_models(args: argparse.Namespace) -> int:
    """``napari-segnet models``: bundled and user models with their validation scores."""
    from napari_segnet.models import ModelLoadError, read_model_file
    from napari_segnet.models.bundled import BUNDLED, list_models, user_models_dir

    for name, path in list_models().items():
        kind = "bundled" if name in BUNDLED else "user"
        try:
            config, provenance, state = read_model_file(path)
        except ModelLoadError as error:
            print(f"{name:<12} {kind:<8} unusable: {error}")
            continue
        parameters = sum(t.numel() for t in state.values() if t.is_floating_point())
        scores = provenance.get("validation", {})
        ap = f"validation AP@0.5 {scores['ap50']:.3f}" if "ap50" in scores else ""
        print(f"{name:<12} {kind:<8} {config.encoder:<9} {parameters / 1e6:5.2f} M  {ap}  {path}")
    print(f"User models folder: {user_models_dir()}")
    return 0
