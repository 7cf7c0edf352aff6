"""Stage 05 end to end on a tiny simulated video: teacher -> pseudo-labels -> one-epoch YOLO
student -> trackers -> MOT metrics -> the table beside the SDT-Net paper's Table 2."""

from __future__ import annotations

import math

import pytest

from afss_utils.coco import load_results
from afss_utils.config import PARAMS_DIR, load_params
from afss_utils.debris_stage import make_videos, score_detector, tracking_table, train_yolo_detector
from afss_utils.distill import confidence_filter, pseudo_instances
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import pseudolabel
from afss_utils.tables import PAPER_DEBRIS_TABLE2
from afss_utils.teachers import build_teacher


@pytest.fixture(scope="module")
def params():
    return load_params(PARAMS_DIR / "smoke.yaml")["debris"]


def test_paper_table2_rows():
    rows = {(r["detector"], r["split"]): r for r in PAPER_DEBRIS_TABLE2}
    assert (
        rows[("OC-SORT", "dense")]["MOTA"] == 68.5 and rows[("SDT-Net", "sparse")]["HOTA"] == 87.8
    )
    assert math.isnan(rows[("LSD", "sparse")]["IDS"]) and rows[("LSD", "sparse")]["MOTA"] == 9.8


def test_one_epoch_train_track_evaluate(tmp_path, params):
    data = make_videos(params, tmp_path / "data", progress=False)
    assert set(data) == {"train", "test_sparse", "test_dense"}
    # reused, not re-rendered, when the settings are unchanged
    mtime = (tmp_path / "data" / "train.json").stat().st_mtime_ns
    make_videos(params, tmp_path / "data", progress=False)
    assert (tmp_path / "data" / "train.json").stat().st_mtime_ns == mtime

    teacher = build_teacher("streak", top_k=None, **params["teacher_options"])
    fusion = FusionConfig.from_params(params["fusion"])
    labels = {}
    for split, ds in data.items():
        out = tmp_path / f"{split}.json"
        pseudolabel(teacher, ds, out, params["tta"], fusion, prompt="debris", progress=False)
        labels[split] = load_results(out)
    kept, theta = confidence_filter(labels["train"], params["confidence_threshold"])
    train = pseudo_instances(kept, data["train"], top_k=None)
    # top_k=None: every kept label of a frame becomes an annotation, not only the best one
    assert len(train["annotations"]) == len(kept) and 0 < theta < 1

    student = train_yolo_detector(train, data["train"].image_dir, tmp_path / "student", params, 0)
    preds = {s: student.predict(data[s]) for s in ("test_sparse", "test_dense")}
    rows = score_detector("teacher TTA+fusion", labels, data, params)
    rows += score_detector("student", preds, data, params)
    assert {(r["detector"], r["split"]) for r in rows} == {
        (d, s) for d in ("teacher TTA+fusion", "student") for s in ("sparse", "dense")
    }
    for r in rows:
        assert r["MOTA"] == pytest.approx(r["mm_MOTA"]) and r["IDS"] == r["mm_IDS"]
    table = tracking_table(rows, PAPER_DEBRIS_TABLE2)
    assert "dense HOTA" in table.columns and "sparse MOTA" in table.columns
    assert set(table["source"]) == {"ours (simulated)", "paper (SDTD)"}
    assert len(table) == 2 * len(params["trackers"]) + len(
        {r["detector"] for r in PAPER_DEBRIS_TABLE2}
    )
