"""The streak teacher finds line-source debris and ignores stars, hot pixels and empty sky."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from afss_utils.coco import box_iou
from afss_utils.debris.simulation import DebrisConfig, render_video, zscale
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import label_image
from afss_utils.teachers import build_teacher
from afss_utils.tta import parse_tta

CFG = DebrisConfig(size=96, frames=4, debris=(2, 2), truncate_prob=0.0, speed=(1.0, 2.0))


def _rgb(frame) -> np.ndarray:
    return np.repeat(zscale(frame.image)[..., None], 3, axis=2)


@pytest.mark.parametrize("method", ["matched", "lsd"])
def test_finds_the_streaks(method):
    teacher = build_teacher("streak", top_k=None, method=method)
    hits = total = 0
    for seed in range(4):
        fr = render_video(seed, CFG)[0]
        pred = teacher.predict(_rgb(fr))
        total += len(fr.boxes)
        if len(pred) and len(fr.boxes):
            hits += int((box_iou(pred.boxes, fr.boxes).max(0) >= 0.3).sum())
    assert hits >= 0.75 * total


def test_matched_score_is_its_snr_term_times_its_elongation_term():
    """A 20 x 1 px line of amplitude A on a zero residual, noise 1, no smoothing: snr = A, and
    its pixels' sample variances (L (L + 1) / 12 along, 0 across, each + 1/12 for a pixel's
    own extent) give elongation sqrt(L (L + 1) + 1)."""
    from afss_utils.debris.teacher import component_streaks

    length, k_sigma = 20, 3.0
    elongation = np.sqrt(length * (length + 1) + 1)
    for amplitude in (6.0, 12.0):
        residual = np.zeros((32, 48), np.float32)
        residual[10, 10 : 10 + length] = amplitude
        pred = component_streaks(residual, 1.0, k_sigma, min_area=6, psf_sigma=0)
        expected = (1 - np.exp(-amplitude / (2 * k_sigma))) * (1 - np.exp(-(elongation - 1) / 3))
        assert pred.boxes.tolist() == [[10, 10, 10 + length, 11]]
        assert pred.extra["elongation"][0] == pytest.approx(elongation, rel=1e-5)
        assert pred.scores[0] == pytest.approx(expected, rel=1e-5)  # 0.631, 0.863


def test_lsd_score_grows_with_the_segment_length():
    """``1 - exp(-length / (4 min_length))``: LSD trims a drawn 30 px line by up to ~1.5 px at
    each end, so each of its segments scores between that of 27 px and of 30 px."""
    from afss_utils.debris.teacher import lsd_streaks

    residual = np.zeros((40, 60), np.float32)
    residual[18:20, 10:40] = 8.0  # 8 sigma: white after lsd_streaks' clipping
    pred = lsd_streaks(residual, 1.0, min_length=6.0)
    low, high = 1 - np.exp(-27 / 24), 1 - np.exp(-30 / 24)  # 0.675, 0.713
    assert len(pred) >= 1 and np.all((pred.scores >= low) & (pred.scores <= high)), pred.scores


def test_no_streak_no_detection():
    # stars, hot pixels and outliers, but no debris: the matched filter keeps nothing
    sky = replace(CFG, debris=(0, 0), stars=60)
    teacher = build_teacher("streak", top_k=None)
    for seed in range(3):
        assert len(teacher.predict(_rgb(render_video(seed, sky)[0]))) == 0
    blank = np.zeros((32, 32, 3), np.uint8)
    assert (
        len(teacher.predict(blank)) == 0
        and len(build_teacher("streak", method="lsd").predict(blank)) == 0
    )


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="hough"):
        build_teacher("streak", method="hough")


def test_tta_and_fusion_keep_several_streaks():
    """top_k=None through TTA (exact flips/rotations) and WBF: every streak survives fusion."""
    teacher = build_teacher("streak", top_k=None)
    fr = render_video(0, CFG)[0]
    image = _rgb(fr)
    single = teacher.predict(image)
    fused = label_image(
        teacher, image, parse_tta(["hflip", "vflip", "rot90"]), FusionConfig(top_k=None)
    )
    assert len(single) >= 2 and len(fused) == len(single)
    assert box_iou(fused.boxes, single.boxes).max(1).min() > 0.7


def _lines_residual(lines, shape=(64, 80), amplitude=10.0, thickness=2):
    """A residual image (noise 1) holding bright lines ``(x1, y1, x2, y2)``, blurred a little."""
    import cv2

    residual = np.zeros(shape, np.float32)
    for x1, y1, x2, y2 in lines:
        cv2.line(residual, (x1, y1), (x2, y2), amplitude, thickness, cv2.LINE_AA)
    return cv2.GaussianBlur(residual, (0, 0), 0.6)


def _near(found, truth, tol):
    """Whether every true (2, 2) endpoint pair has a found one within ``tol`` px (either order)."""
    return all(
        min(min(np.abs(f - t).max(), np.abs(f[::-1] - t).max()) for f in found) <= tol
        for t in truth
    )


@pytest.mark.parametrize(
    "lines",
    [
        [(10, 10, 50, 40), (10, 40, 50, 12)],  # two streaks crossing: an X
        [(10, 20, 60, 28), (10, 24, 60, 32)],  # two fragments side by side, 4 px apart
    ],
    ids=["crossing", "side-by-side"],
)
def test_touching_streaks_are_split_into_their_lines(lines):
    """Two streaks that threshold into one connected component come out as two labels, each
    with its own endpoints (read off its mask as the notebook does)."""
    import cv2

    from afss_utils.debris.obb import mask_endpoints
    from afss_utils.debris.teacher import component_streaks

    residual = _lines_residual(lines)
    n_components = cv2.connectedComponents((residual > 3).astype(np.uint8))[0] - 1
    assert n_components == 1  # one blob: the component rule alone gives at most one streak
    pred = component_streaks(residual, 1.0, 3.0, min_area=6, psf_sigma=0)
    assert len(pred) == 2
    found = [mask_endpoints(m, 2.0) for m in pred.masks]
    truth = [np.reshape(v, (2, 2)).astype(float) for v in lines]
    assert _near(found, truth, tol=2.5)


def test_line_segments_of_nothing_a_blob_and_one_line():
    from afss_utils.debris.teacher import line_segments

    none = np.zeros(0)
    assert line_segments(none, none, none) == []
    ys, xs = np.mgrid[0:6, 0:6]  # a 6 x 6 square: no run of 8 px along any line
    assert line_segments(xs.ravel(), ys.ravel(), np.ones(36)) == []
    xs = np.arange(30.0).repeat(2)
    ys = np.tile([5.0, 6.0], 30)  # one 30 x 2 px line: one segment holding all of it
    segs = line_segments(xs, ys, np.ones(60))
    assert len(segs) == 1 and segs[0].all()
