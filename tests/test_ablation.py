"""TTA ablation grid: one run per (setting, method), each distinct view predicted once per image,
results scoreable and equal to the pseudo-labeller's."""

from __future__ import annotations

import json

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
    # each distinct view once per image (identity, vflip, hflip), not once per set (1 + 2 + 3)
    assert teacher.calls == 3 * len(ds)
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
def batching_teacher_cls(bright_teacher_cls):
    """A teacher that labels views in batches and records each batch's view count."""

    class BatchingTeacher(bright_teacher_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.batches = []

        def predict_batch(self, images, prompt="spacecraft"):
            self.batches.append(len(images))
            return [self.predict(im, prompt) for im in images]

    return BatchingTeacher


def test_the_paper_grid_labels_each_distinct_view_once_in_one_batch(
    tiny_coco, batching_teacher_cls
):
    from afss_utils.config import named_grid

    grid = named_grid("tta_grid", "paper")
    ds = open_coco(tiny_coco)
    teacher = batching_teacher_cls()
    runs = tta_ablation(teacher, ds, grid, ["wbf"], FusionConfig(), progress=False)
    slots = sum(1 + len(row["augs"]) for row in grid)
    distinct = 1 + len({a for row in grid for a in row["augs"]})
    assert (slots, distinct) == (30, 11)  # the count for the paper grid
    assert teacher.batches == [distinct] * len(ds) and teacher.calls == distinct * len(ds)
    assert {r.views for r in runs} == {1 + len(row["augs"]) for row in grid}


def test_ablation_cell_equals_the_pseudolabel_file_of_the_params_setting(
    tiny_coco, tmp_path, batching_teacher_cls
):
    # The ablation batches all distinct views, the labeller only its setting's: the same labels
    # from a teacher whose predictions do not depend on the batch, as the VLMs' do not
    # (tests/test_teachers_vlm.py::test_batch_of_different_sizes_matches_single)
    from afss_utils import coco
    from afss_utils.config import load_params
    from afss_utils.pseudolabel import empty_path, info_path, pseudolabel, save_labels

    params = load_params(None)
    fusion = FusionConfig.from_params(dict(params["fusion"], top_k=params["top_k"]))
    ds = open_coco(tiny_coco)
    grid = [
        {"name": "none", "augs": []},
        {"name": "params", "augs": list(params["tta"])},
        {"name": "more", "augs": ["hflip", "rot90"]},
    ]
    runs = tta_ablation(batching_teacher_cls(), ds, grid, [fusion.method], fusion, progress=False)
    cell = next(r for r in runs if r.setting == "params")
    out = pseudolabel(
        batching_teacher_cls(), ds, tmp_path / "p.json", params["tta"], fusion, progress=False
    ).out_path
    assert cell.results and coco.load_results(out) == json_roundtrip(cell.results)
    # notebook 02 publishes that cell as the labeller's files, sidecar included, for 03 to reuse
    assert list(cell.augs) == json.loads(info_path(out).read_text())["header"]["tta"]
    saved = save_labels(
        cell.results,
        batching_teacher_cls(),
        ds,
        tmp_path / "cell" / "p.json",
        params["tta"],
        fusion,
    )
    for path in (saved, info_path(saved), empty_path(saved)):
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name
    single = pseudolabel(
        batching_teacher_cls(), ds, tmp_path / "s.json", "none", fusion, progress=False
    )
    assert coco.load_results(single.out_path) == json_roundtrip(runs[0].results)


def json_roundtrip(obj):
    return json.loads(json.dumps(obj))
