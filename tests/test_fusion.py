"""Fusion of per-view predictions: WBF / NMS / soft-NMS, empty-view policy, masks, bad params."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afss_utils.fusion import FusionConfig, FusionError, fuse
from afss_utils.teachers.base import Prediction

H, W = 60, 80


def det(box, score, with_mask=True, **extra):
    """One-detection Prediction whose mask fills its (integer) box."""
    box = np.asarray(box, float)
    mask = None
    if with_mask:
        mask = np.zeros((1, H, W), bool)
        x1, y1, x2, y2 = np.round(box).astype(int)
        mask[0, y1:y2, x1:x2] = True
    return Prediction(box[None], [score], mask, {k: [v] for k, v in extra.items()})


def empty(with_mask=True):
    return Prediction.empty(H, W, with_masks=with_mask)


# ----------------------------------------------------------------------------- empty cases
@pytest.mark.parametrize("method", ["wbf", "nms", "soft_nms"])
@pytest.mark.parametrize("policy", ["skip", "count"])
def test_all_views_empty_gives_empty_prediction(method, policy):
    cfg = FusionConfig(method=method, empty_views=policy)
    out = fuse([empty(), empty(), empty()], (H, W), cfg)
    assert len(out) == 0 and out.masks.shape == (0, H, W)
    out = fuse([empty(False), empty(False)], (H, W), cfg)
    assert len(out) == 0 and out.masks is None
    assert len(fuse([], (H, W), cfg)) == 0


def test_degenerate_and_zero_score_boxes_are_dropped_not_crashing():
    views = [Prediction([[10, 10, 10, 30]], [0.9]), Prediction([[5, 5, 20, 20]], [0.0])]
    assert len(fuse(views, (H, W), FusionConfig())) == 0


# ----------------------------------------------------------------------------- one / two views
@pytest.mark.parametrize("method", ["wbf", "nms", "soft_nms"])
def test_one_view_is_returned_unchanged(method):
    view = det([12.5, 7.25, 50.0, 41.0], 0.73, mask_scores=0.61)
    out = fuse([view], (H, W), FusionConfig(method=method))
    np.testing.assert_allclose(out.boxes, view.boxes, atol=1e-3)
    np.testing.assert_allclose(out.scores, view.scores, atol=1e-6)
    np.testing.assert_array_equal(out.masks, view.masks)
    np.testing.assert_allclose(out.extra["mask_scores"], [0.61], atol=1e-6)


@pytest.mark.parametrize("method", ["wbf", "nms", "soft_nms"])
def test_pixel_boxes_far_beyond_one_survive(method):
    """ensemble_boxes would clip pixel boxes to [0, 1] and drop them; we normalise first."""
    out = fuse([det([40, 30, 79, 59], 0.8)], (H, W), FusionConfig(method=method))
    np.testing.assert_allclose(out.boxes, [[40, 30, 79, 59]], atol=1e-3)


@pytest.mark.parametrize("policy", ["skip", "count"])
def test_two_identical_views_keep_box_and_score(policy):
    view = det([10, 10, 40, 30], 0.8)
    out = fuse([view, view], (H, W), FusionConfig(empty_views=policy))
    np.testing.assert_allclose(out.boxes, view.boxes, atol=1e-3)
    np.testing.assert_allclose(out.scores, [0.8], atol=1e-6)


def test_empty_view_policy_changes_wbf_avg_score():
    views = [det([10, 10, 40, 30], 0.8), empty()]
    skip = fuse(views, (H, W), FusionConfig(empty_views="skip"))
    count = fuse(views, (H, W), FusionConfig(empty_views="count"))
    np.testing.assert_allclose(skip.boxes, count.boxes, atol=1e-4)
    np.testing.assert_allclose(
        skip.scores, [0.8], atol=1e-6
    )  # the authors: lone detection keeps its score
    np.testing.assert_allclose(
        count.scores, [0.8 / 2], atol=1e-6
    )  # the empty view counts in the average
    for method in ("nms", "soft_nms"):  # no averaging, so no difference
        a = fuse(views, (H, W), FusionConfig(method=method, empty_views="skip"))
        b = fuse(views, (H, W), FusionConfig(method=method, empty_views="count"))
        np.testing.assert_allclose(a.scores, b.scores)


def test_default_policy_is_skip_as_in_params():
    from afss_utils.config import load_params

    params = load_params()
    assert FusionConfig().empty_views == "skip"
    # the dataclass defaults are the params file's: code and default.yaml cannot drift apart
    assert FusionConfig.from_params(params["fusion"]) == FusionConfig()
    defaults = FusionConfig().to_dict()
    assert {k: defaults[k] for k in params["fusion"]} == params["fusion"]


def test_wbf_box_is_score_weighted_average_eq4():
    a, b = np.array([10.0, 10, 40, 30]), np.array([12.0, 8, 44, 32])
    sa, sb = 0.9, 0.3
    out = fuse([det(a, sa), det(b, sb)], (H, W), FusionConfig(method="wbf"))
    np.testing.assert_allclose(out.boxes[0], (sa * a + sb * b) / (sa + sb), atol=1e-3)
    np.testing.assert_allclose(out.scores, [(sa + sb) / 2], atol=1e-6)


def test_nms_keeps_the_best_box_exactly():
    a, b = [10.0, 10, 40, 30], [12.0, 8, 44, 32]
    out = fuse([det(a, 0.4), det(b, 0.7)], (H, W), FusionConfig(method="nms"))
    np.testing.assert_allclose(out.boxes, [b], atol=1e-3)
    np.testing.assert_allclose(out.scores, [0.7], atol=1e-6)


def test_top_k_and_separate_clusters():
    views = [det([2, 2, 20, 20], 0.9), det([50, 30, 75, 55], 0.6)]
    out = fuse(views, (H, W), FusionConfig(top_k=None))
    assert len(out) == 2 and out.scores[0] >= out.scores[1]
    np.testing.assert_allclose(out.boxes[1], [50, 30, 75, 55], atol=1e-3)
    np.testing.assert_array_equal(out.masks[1], views[1].masks[0])  # its own cluster's mask only
    out = fuse(views, (H, W), FusionConfig(top_k=1))
    assert len(out) == 1
    np.testing.assert_allclose(out.boxes[0], [2, 2, 20, 20], atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-3, 3),
            st.floats(-3, 3),
            st.floats(-3, 3),
            st.floats(-3, 3),
            st.floats(0.05, 1),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["wbf", "nms", "soft_nms"]),
)
def test_fused_box_lies_within_the_inputs(jitter, method):
    """Jittered copies of one box fuse into one box inside the inputs' coordinate range."""
    base = np.array([20.0, 15, 50, 45])
    boxes = [base + np.array(j[:4]) for j in jitter]
    views = [Prediction(b[None], [j[4]]) for b, j in zip(boxes, jitter, strict=True)]
    out = fuse(
        views, (H, W), FusionConfig(method=method, top_k=None if method != "soft_nms" else 1)
    )
    stacked = np.stack(boxes)
    assert len(out) == 1
    assert np.all(out.boxes[0] >= stacked.min(0) - 1e-3) and np.all(
        out.boxes[0] <= stacked.max(0) + 1e-3
    )
    # one cluster of all T views' boxes (M = T): WBF's score is eq. 4's mean, (hard or soft)
    # NMS keeps the best box with its own, never decayed, score
    scores = np.concatenate([v.scores for v in views]).astype(np.float64)
    expected = scores.mean() if method == "wbf" else scores.max()
    assert out.scores[0] == pytest.approx(expected, rel=1e-5)
    assert out.masks is None


# ----------------------------------------------------------------------------- masks
def test_mask_vote_is_score_weighted():
    base = np.zeros((H, W), bool)
    base[10:30, 10:40] = True
    m1, m2, m3 = base.copy(), base.copy(), base.copy()
    m1[30:34, 10:40] = True  # only the confident view: 0.9 / 1.5 >= 0.5 -> kept
    m2[5:10, 10:40] = True  # two weak views: 0.6 / 1.5 < 0.5 -> dropped
    m3[5:10, 10:40] = True
    views = [
        Prediction([[10, 10, 40, 34]], [0.9], m1[None]),
        Prediction([[10, 5, 40, 30]], [0.3], m2[None]),
        Prediction([[10, 5, 40, 30]], [0.3], m3[None]),
    ]
    out = fuse(views, (H, W), FusionConfig())
    expected = base.copy()
    expected[30:34, 10:40] = True
    np.testing.assert_array_equal(out.masks[0], expected)


def test_extra_fields_are_score_weighted_averages():
    views = [
        det([10, 10, 40, 30], 0.9, mask_scores=0.8),
        det([10, 10, 40, 30], 0.3, mask_scores=0.2),
    ]
    out = fuse(views, (H, W), FusionConfig())
    np.testing.assert_allclose(out.extra["mask_scores"], [(0.9 * 0.8 + 0.3 * 0.2) / 1.2], atol=1e-6)


def test_reprompt_replaces_masks_with_the_teachers_segmentation():
    calls = []

    def reprompt(boxes):
        calls.append(boxes.copy())
        masks = np.zeros((len(boxes), H, W), bool)
        masks[:, 0:5, 0:5] = True
        return masks, np.full(len(boxes), 0.42)

    views = [det([10, 10, 40, 30], 0.9), det([11, 10, 41, 30], 0.8)]
    out = fuse(views, (H, W), FusionConfig(mask_fusion="reprompt"), reprompt=reprompt)
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], out.boxes)
    assert out.masks[0, :5, :5].all() and out.masks.sum() == 25
    np.testing.assert_allclose(out.extra["mask_scores"], [0.42])
    with pytest.raises(FusionError, match="reprompt"):
        fuse(views, (H, W), FusionConfig(mask_fusion="reprompt"))


def test_box_only_views_give_box_only_output_and_mixing_is_an_error():
    out = fuse([det([10, 10, 40, 30], 0.9, with_mask=False)] * 2, (H, W))
    assert out.masks is None and len(out) == 1
    with pytest.raises(FusionError, match="masks"):
        fuse([det([10, 10, 40, 30], 0.9), det([10, 10, 40, 30], 0.9, with_mask=False)], (H, W))


def test_bad_inputs_are_our_errors():
    with pytest.raises(FusionError, match="scores"):
        fuse([Prediction([[1, 1, 5, 5]], [1.5])], (H, W))
    with pytest.raises(FusionError, match="finite"):
        fuse([Prediction([[1, np.nan, 5, 5]], [0.5])], (H, W))
    with pytest.raises(FusionError, match="image"):
        fuse([Prediction([[1, 1, 5, 5]], [0.5], np.zeros((1, 10, 10), bool))], (H, W))


# ----------------------------------------------------------------------------- params
def test_from_params_rejects_unknown_key_by_name():
    with pytest.raises(FusionError, match="'iou_threshold'"):
        FusionConfig.from_params({"method": "wbf", "iou_threshold": 0.5})


@pytest.mark.parametrize(
    "params, key",
    [
        ({"conf_type": "mean"}, "conf_type"),
        ({"method": "wbf2"}, "method"),
        ({"empty_views": "drop"}, "empty_views"),
        ({"mask_fusion": "union"}, "mask_fusion"),
        ({"iou_thr": 1.5}, "iou_thr"),
        ({"skip_box_thr": -0.1}, "skip_box_thr"),
        ({"top_k": 0}, "top_k"),
        ({"sigma": 0}, "sigma"),
    ],
)
def test_bad_values_raise_our_error_never_systemexit(params, key):
    try:
        FusionConfig.from_params(params)
    except FusionError as exc:
        assert key in str(exc)
    except SystemExit:  # pragma: no cover - the failure this guards against
        pytest.fail("ensemble_boxes' exit() was reached")
    else:
        pytest.fail(f"{params} was accepted")


def test_all_conf_types_run():
    views = [det([10, 10, 40, 30], 0.8), det([11, 10, 41, 31], 0.6), empty()]
    for conf_type in ("avg", "max", "box_and_model_avg", "absent_model_aware_avg"):
        for policy in ("skip", "count"):
            out = fuse(views, (H, W), FusionConfig(conf_type=conf_type, empty_views=policy))
            assert len(out) == 1 and 0 < out.scores[0] <= 0.8 + 1e-6


def test_soft_nms_decays_overlapping_scores_and_nms_removes_them():
    a, b = [10.0, 10, 40, 30], [10.0, 10, 40, 30]
    views = [det(a, 0.9), det(b, 0.6)]
    soft = fuse(views, (H, W), FusionConfig(method="soft_nms", top_k=None, sigma=0.5))
    np.testing.assert_allclose(
        soft.scores, [0.9, 0.6 * np.exp(-1 / 0.5)], atol=1e-6
    )  # Gaussian, IoU 1
    hard = fuse(views, (H, W), FusionConfig(method="nms", top_k=None))
    np.testing.assert_allclose(hard.scores, [0.9], atol=1e-6)
