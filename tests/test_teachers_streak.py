"""The streak teacher finds line-source debris and ignores stars, hot pixels and empty sky."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from afss_utils.coco import box_iou
from afss_utils.debris_sim import DebrisConfig, render_video, zscale
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
        assert np.all((pred.scores >= 0) & (pred.scores <= 1))
        total += len(fr.boxes)
        if len(pred) and len(fr.boxes):
            hits += int((box_iou(pred.boxes, fr.boxes).max(0) >= 0.3).sum())
    assert hits >= 0.75 * total


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
