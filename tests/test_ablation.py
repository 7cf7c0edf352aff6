"""TTA ablation grid: one run per (setting, method), views predicted once, results scoreable."""

from __future__ import annotations

import numpy as np
import pytest
from test_tta import BrightTeacher  # counts its calls: views must be predicted once

from afss_utils.ablation import NO_FUSION, tta_ablation
from afss_utils.datasets import open_coco
from afss_utils.evaluate import evaluate
from afss_utils.fusion import FusionConfig
from afss_utils.teachers.base import Prediction

GRID = [
    {"name": "none", "augs": []},
    {"name": "vflip", "augs": ["vflip"]},
    {"name": "flips", "augs": ["hflip", "vflip"]},
]


def test_grid_cells_views_and_exact_geometry(tiny_coco):
    ds = open_coco(tiny_coco)
    teacher = BrightTeacher()
    runs = tta_ablation(teacher, ds, GRID, ["wbf", "nms"], FusionConfig(), progress=False)
    cells = [(r.setting, r.method, r.views) for r in runs]
    assert cells == [
        ("none", NO_FUSION, 1),
        ("vflip", "wbf", 2),
        ("vflip", "nms", 2),
        ("flips", "wbf", 3),
        ("flips", "nms", 3),
    ]
    # identity, vflip, hflip: three teacher calls per image however many rows use them
    assert teacher.calls == 3 * len(ds)
    for run in runs:
        assert len(run.results) == len(ds)
        assert run.seconds > 0
        # flips of an exact teacher map back exactly: every cell is perfect on this data
        assert evaluate(ds, run.results, "segm")["AP"] == pytest.approx(100.0)
    assert runs[3].seconds > runs[0].seconds  # more views cost more


def test_empty_dataset_and_no_detection(tiny_coco, tmp_path):
    ds = open_coco(tiny_coco)
    runs = tta_ablation(BrightTeacher(), ds.subset([]), GRID, ["wbf"], progress=False)
    assert all(r.results == [] for r in runs)

    class Blind(BrightTeacher):
        def predict(self, image, prompt="spacecraft"):
            return Prediction.empty(*image.shape[:2])

    runs = tta_ablation(Blind(), ds, GRID, ["wbf", "soft_nms"], progress=False)
    assert all(r.results == [] for r in runs)
    assert np.isfinite([r.seconds for r in runs]).all()
