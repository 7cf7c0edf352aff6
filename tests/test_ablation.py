"""TTA ablation grid: one run per (setting, method), views predicted once, results scoreable."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_grid_cells_views_and_exact_geometry(tiny_coco, bright_teacher_cls):
    ds = open_coco(tiny_coco)
    teacher = bright_teacher_cls()  # counts its calls: views must be predicted once
    runs = tta_ablation(teacher, ds, GRID, ["wbf", "nms"], FusionConfig(), progress=False)
    cells = [(r.setting, r.method, r.views) for r in runs]
    assert cells == [
        ("none", NO_FUSION, 1),
        ("vflip", "wbf", 2),
        ("vflip", "nms", 2),
        ("flips", "wbf", 3),
        ("flips", "nms", 3),
    ]
    # each aug set is predicted once per image, as the pseudo-labeller would: 1 + 2 + 3 views
    assert teacher.calls == 6 * len(ds)
    for run in runs:
        assert len(run.results) == len(ds)
        assert run.seconds > 0
        # flips of an exact teacher map back exactly: every cell is perfect on this data
        assert evaluate(ds, run.results, "segm")["AP"] == pytest.approx(100.0)


def test_empty_dataset_and_no_detection(tiny_coco, tmp_path, bright_teacher_cls):
    ds = open_coco(tiny_coco)
    runs = tta_ablation(bright_teacher_cls(), ds.subset([]), GRID, ["wbf"], progress=False)
    assert all(r.results == [] for r in runs)

    class Blind(bright_teacher_cls):
        def predict(self, image, prompt="spacecraft"):
            return Prediction.empty(*image.shape[:2])

    runs = tta_ablation(Blind(), ds, GRID, ["wbf", "soft_nms"], progress=False)
    assert all(r.results == [] for r in runs)
    assert np.isfinite([r.seconds for r in runs]).all()


@pytest.fixture
def batch_size_teacher_cls(bright_teacher_cls):
    """A teacher that batches views, and its score depends on the batch (as a VLM's output does
    on the padding of differently sized views), so a cell made from other batches than the
    labeller's differs."""

    class BatchSizeTeacher(bright_teacher_cls):
        def predict_batch(self, images, prompt="spacecraft"):
            preds = [self.predict(im, prompt) for im in images]
            for p in preds:
                p.scores = p.scores - 0.01 * len(images)
            return preds

    return BatchSizeTeacher


def test_ablation_cell_equals_the_pseudolabel_file_of_the_params_setting(
    tiny_coco, tmp_path, batch_size_teacher_cls
):
    from afss_utils import coco
    from afss_utils.config import load_params
    from afss_utils.pseudolabel import pseudolabel

    params = load_params(None)
    fusion = FusionConfig.from_params(dict(params["fusion"], top_k=params["top_k"]))
    ds = open_coco(tiny_coco)
    grid = [
        {"name": "none", "augs": []},
        {"name": "params", "augs": list(params["tta"])},
        {"name": "more", "augs": ["hflip", "rot90"]},
    ]
    runs = tta_ablation(batch_size_teacher_cls(), ds, grid, [fusion.method], fusion, progress=False)
    cell = next(r for r in runs if r.setting == "params")
    out = pseudolabel(
        batch_size_teacher_cls(), ds, tmp_path / "p.json", params["tta"], fusion, progress=False
    ).out_path
    assert cell.results and coco.load_results(out) == json_roundtrip(cell.results)
    single = pseudolabel(
        batch_size_teacher_cls(), ds, tmp_path / "s.json", "none", fusion, progress=False
    )
    assert coco.load_results(single.out_path) == json_roundtrip(runs[0].results)


def json_roundtrip(obj):
    import json

    return json.loads(json.dumps(obj))
