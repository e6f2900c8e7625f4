"""Instance metrics against hand-made label images with hand-computed IoUs and scores."""

import numpy as np
import pytest

from napari_segnet.metrics import DEFAULT_THRESHOLDS, evaluate, iou_matrix, match


def canvas(shape=(40, 60)):
    return np.zeros(shape, np.int32)


def pooled(truths, predictions, thresholds=DEFAULT_THRESHOLDS):
    return evaluate(truths, predictions, thresholds=thresholds)["pooled"]


def three_objects():
    labels = canvas()
    labels[2:12, 2:12] = 1
    labels[20:30, 5:20] = 2
    labels[5:35, 40:55] = 3
    return labels


def test_default_thresholds_are_050_to_090():
    np.testing.assert_allclose(DEFAULT_THRESHOLDS, np.arange(50, 91, 5) / 100)


def test_perfect_prediction_scores_one_everywhere():
    truth = three_objects()
    result = evaluate([truth], [truth.copy()])
    assert result["n_images"] == 1
    for t in DEFAULT_THRESHOLDS:
        for kind in ("pooled", "per_image_mean"):
            scores = result[kind][t]
            for key in ("ap", "precision", "recall", "f1", "pq"):
                assert scores[key] == pytest.approx(1.0), (kind, t, key)
        assert (result["pooled"][t]["tp"], result["pooled"][t]["fp"]) == (3, 0)
        assert result["pooled"][t]["fn"] == 0


def test_relabelled_prediction_is_still_perfect():
    truth = three_objects()
    prediction = np.choose(truth, [0, 9, 4, 1000])  # other (non-consecutive) ids
    assert pooled([truth], [prediction])[0.9]["ap"] == 1.0


def shifted_squares():
    truth, prediction = canvas(), canvas()
    truth[10:20, 10:20] = 1
    prediction[10:20, 15:25] = 1  # overlap 10 × 5 = 50, union 150: IoU 1/3
    return truth, prediction


def test_shifted_square_has_iou_one_third():
    truth, prediction = shifted_squares()
    np.testing.assert_allclose(iou_matrix(truth, prediction), [[1 / 3]])


def test_shifted_square_is_a_false_positive_and_a_false_negative_at_050():
    truth, prediction = shifted_squares()
    scores = pooled([truth], [prediction], thresholds=(0.3, 0.5))
    assert (scores[0.5]["tp"], scores[0.5]["fp"], scores[0.5]["fn"]) == (0, 1, 1)
    for key in ("ap", "precision", "recall", "f1", "pq"):
        assert scores[0.5][key] == 0.0
    # At 0.3 it matches; PQ = mean matched IoU × F1 = 1/3 × 1.
    assert (scores[0.3]["tp"], scores[0.3]["fp"], scores[0.3]["fn"]) == (1, 0, 0)
    assert scores[0.3]["ap"] == 1.0
    assert scores[0.3]["pq"] == pytest.approx(1 / 3)


def test_split_object():
    # One true 10 × 20 rectangle, predicted as two 10 × 10 halves: IoU 100/200 = 0.5 each.
    truth, prediction = canvas(), canvas()
    truth[5:15, 10:30] = 7
    prediction[5:15, 10:20] = 1
    prediction[5:15, 20:30] = 2
    np.testing.assert_allclose(iou_matrix(truth, prediction), [[0.5, 0.5]])
    scores = pooled([truth], [prediction], thresholds=(0.5, 0.55))
    s = scores[0.5]  # one half matches (IoU ≥ τ is inclusive), the other is a FP
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0)
    assert s["ap"] == pytest.approx(1 / 2)
    assert s["precision"] == pytest.approx(1 / 2)
    assert s["recall"] == pytest.approx(1.0)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["pq"] == pytest.approx(0.5 * 2 / 3)
    s = scores[0.55]
    assert (s["tp"], s["fp"], s["fn"]) == (0, 2, 1)
    assert s["ap"] == 0.0


def test_merged_prediction():
    # Two true 10 × 10 squares side by side, predicted as one 10 × 20 rectangle.
    truth, prediction = canvas(), canvas()
    truth[5:15, 10:20] = 1
    truth[5:15, 20:30] = 2
    prediction[5:15, 10:30] = 3
    s = pooled([truth], [prediction], thresholds=(0.5,))[0.5]
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 1)
    assert s["ap"] == pytest.approx(1 / 2)
    assert s["precision"] == pytest.approx(1.0)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["pq"] == pytest.approx(0.5 * 2 / 3)


def test_empty_truth_and_empty_prediction():
    objects = three_objects()
    empty = canvas()
    s = pooled([empty], [objects], thresholds=(0.5,))[0.5]
    assert (s["tp"], s["fp"], s["fn"]) == (0, 3, 0)
    assert s["ap"] == s["precision"] == s["recall"] == s["f1"] == s["pq"] == 0.0
    s = pooled([objects], [empty], thresholds=(0.5,))[0.5]
    assert (s["tp"], s["fp"], s["fn"]) == (0, 0, 3)
    assert s["ap"] == s["recall"] == s["pq"] == 0.0
    s = pooled([empty], [empty], thresholds=(0.5,))[0.5]
    assert (s["tp"], s["fp"], s["fn"]) == (0, 0, 0)
    assert np.isfinite([s[k] for k in ("ap", "precision", "recall", "f1", "pq")]).all()


def test_non_consecutive_ids_and_row_column_order():
    truth, prediction = canvas(), canvas()
    truth[0:10, 0:10] = 1000  # rows: 3, 70, 1000
    truth[20:30, 0:10] = 3
    truth[0:10, 30:40] = 70
    prediction[0:10, 0:10] = 5  # perfect for 1000
    prediction[20:30, 0:5] = 12  # half of 3: IoU 0.5
    prediction[0:10, 32:40] = 9  # 80 of 70's 100 pixels: IoU 0.8
    expected = np.zeros((3, 3))  # columns: 5, 9, 12
    expected[0, 2] = 0.5
    expected[1, 1] = 0.8
    expected[2, 0] = 1.0
    np.testing.assert_allclose(iou_matrix(truth, prediction), expected)
    scores = pooled([truth], [prediction], thresholds=(0.5, 0.75, 0.85))
    assert [scores[t]["tp"] for t in (0.5, 0.75, 0.85)] == [3, 2, 1]
    assert scores[0.5]["pq"] == pytest.approx((1 + 0.8 + 0.5) / 3)
    assert scores[0.75]["pq"] == pytest.approx((1 + 0.8) / 2 * (4 / 6))


def test_pooled_and_per_image_mean_differ():
    # Image A: one object, perfectly found (AP 1). Image B: three objects, one found
    # (TP 1, FN 2: AP 1/3). Pooled: TP 2, FN 2 → AP 1/2; mean of images: (1 + 1/3)/2 = 2/3.
    truth_a = canvas()
    truth_a[5:15, 5:15] = 1
    truth_b = three_objects()
    prediction_b = np.where(truth_b == 2, 2, 0)
    result = evaluate([truth_a, truth_b], [truth_a.copy(), prediction_b], thresholds=(0.5,))
    assert result["n_images"] == 2
    p, m = result["pooled"][0.5], result["per_image_mean"][0.5]
    assert (p["tp"], p["fp"], p["fn"]) == (2, 0, 2)
    assert p["ap"] == pytest.approx(1 / 2)
    assert m["ap"] == pytest.approx(2 / 3)
    assert p["recall"] == pytest.approx(1 / 2)
    assert m["recall"] == pytest.approx(2 / 3)
    assert p["f1"] == pytest.approx(2 / 3)  # 2·2 / (2·2 + 0 + 2)
    assert m["f1"] == pytest.approx((1 + 1 / 2) / 2)  # image B: 2 / (2 + 2)
    assert p["precision"] == m["precision"] == pytest.approx(1.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="Shapes differ"):
        evaluate([canvas((10, 10))], [canvas((10, 11))])
    with pytest.raises(ValueError):
        evaluate([canvas()], [canvas(), canvas()])  # different numbers of images


def greedy_trap():
    """Two truths and two predictions where greedy IoU matching finds one match, optimal two.

    Objects span the full height, so IoUs are ratios of column intervals:
    truth A = [0, 10), B = [10, 14); prediction P = [4, 14), Q = [0, 4).
    IoU(A, P) = 6/14, IoU(B, P) = 4/10, IoU(A, Q) = 4/10, IoU(B, Q) = 0.
    Greedy takes A–P (the best pair) and strands both B and Q; the optimum is A–Q, B–P.
    """
    truth, prediction = np.zeros((8, 20), np.int32), np.zeros((8, 20), np.int32)
    truth[:, 0:10], truth[:, 10:14] = 1, 2
    prediction[:, 4:14], prediction[:, 0:4] = 1, 2
    return truth, prediction


def test_hungarian_matching_maximises_the_number_of_matches():
    truth, prediction = greedy_trap()
    np.testing.assert_allclose(iou_matrix(truth, prediction), [[6 / 14, 0.4], [0.4, 0.0]])
    s = pooled([truth], [prediction], thresholds=(0.3,))[0.3]
    assert (s["tp"], s["fp"], s["fn"]) == (2, 0, 0)
    assert s["ap"] == 1.0
    assert s["pq"] == pytest.approx(0.4)  # (0.4 + 0.4) / 2 × F1 1
    # At 0.42 only A–P qualifies: TP 1, FP 1, FN 1, PQ = 6/14 × 2/4.
    s = pooled([truth], [prediction], thresholds=(0.42,))[0.42]
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["ap"] == pytest.approx(1 / 3)
    assert s["pq"] == pytest.approx(6 / 14 * 0.5)
    s = pooled([truth], [prediction], thresholds=(0.5,))[0.5]
    assert (s["tp"], s["fp"], s["fn"]) == (0, 2, 2)


def test_match_prefers_more_matches_over_a_larger_iou_sum():
    # One pair of IoU 0.9 against two pairs of 0.35 (sum 0.7): two matches win at τ = 0.3,
    # and among equally many matches the larger IoU sum wins.
    iou = np.array([[0.9, 0.35], [0.35, 0.0]])
    counts = match(iou, 0.3)
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)
    assert counts.sum_iou == pytest.approx(0.7)
    iou = np.array([[0.9, 0.4], [0.0, 0.0]])
    counts = match(iou, 0.3)
    assert counts.tp == 1 and counts.sum_iou == pytest.approx(0.9)
    assert match(np.zeros((0, 4)), 0.5) == match(np.zeros((0, 4)), 0.9)
    assert (match(np.zeros((0, 4)), 0.5).fp, match(np.zeros((3, 0)), 0.5).fn) == (4, 3)


def test_iou_matrix_with_only_background_in_one_image():
    truth = three_objects()
    assert iou_matrix(truth, canvas()).shape == (3, 0)
    assert iou_matrix(canvas(), truth).shape == (0, 3)
    # Labels without background pixels at all.
    full = np.ones((4, 4), np.int32)
    np.testing.assert_allclose(iou_matrix(full, full), [[1.0]])
