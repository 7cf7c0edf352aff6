"""Stage 05 end to end on a tiny simulated video: teacher -> pseudo-labels -> one-epoch YOLO
student -> trackers -> MOT metrics -> the table beside the SDT-Net paper's Table 2."""

from __future__ import annotations

import math

import numpy as np
import pytest

from afss_utils.coco import load_results
from afss_utils.config import PARAMS_DIR, load_params
from afss_utils.debris.stage import (
    compare_to_teacher,
    make_videos,
    score_detector,
    tracking_table,
    train_yolo_detector,
)
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


def _rows(detector, tracker, sparse, dense):
    """Long records of one (detector, tracker): sparse/dense = (HOTA, MOTA)."""
    return [
        {"detector": detector, "tracker": tracker, "split": split, "HOTA": h, "MOTA": m,
         "IDF1": 0.0, "IDS": 0, "DetA": 0.0, "AssA": 0.0}
        for split, (h, m) in (("sparse", sparse), ("dense", dense))
    ]  # fmt: skip


def test_compare_to_teacher_says_better_worse_or_mixed_with_the_numbers():
    rows = []
    for tracker, shift in (("bytetrack", -1.0), ("ocsort", 1.0)):  # means over trackers: shift 0
        rows += _rows("teacher zero-shot", tracker, (40 + shift, 30), (30 + shift, 20))
        rows += _rows("teacher TTA+fusion", tracker, (50 + shift, 45), (35 + shift, 25))
        # sparse: above both teachers; dense: HOTA up but MOTA down against TTA+fusion
        rows += _rows("student", tracker, (60 + shift, 55), (38 + shift, 22))
        rows += _rows("Oracle", tracker, (70 + shift, 65), (48 + shift, 40))
    text = compare_to_teacher(tracking_table(rows, PAPER_DEBRIS_TABLE2))
    sparse, dense = (line for line in text.splitlines() if line.startswith("- "))
    assert sparse.startswith("- **sparse**: the student tracks **better** than the teacher zero")
    assert "**better** than the teacher TTA+fusion (HOTA 60.0 vs 50.0, MOTA 55.0 vs 45.0)" in sparse
    assert "10.0 HOTA and 10.0 MOTA below the Oracle (HOTA 70.0, MOTA 65.0)" in sparse
    assert "**better** than the teacher zero-shot (HOTA 38.0 vs 30.0, MOTA 22.0 vs 20.0)" in dense
    assert "**mixed** (HOTA and MOTA disagree) against the teacher TTA+fusion" in dense
    assert "(HOTA 38.0 vs 35.0, MOTA 22.0 vs 25.0)" in dense and "**worse**" not in text
    # a student below its teacher on both metrics is worse; absent detectors are skipped
    worse = [r for r in rows if r["detector"] in ("student", "teacher TTA+fusion")]
    for r in worse:
        if r["detector"] == "student":
            r.update(HOTA=r["HOTA"] - 30, MOTA=r["MOTA"] - 30)
    text = compare_to_teacher(tracking_table(worse))
    assert text.count("**worse** than the teacher TTA+fusion") == 2 and "Oracle" not in text
    assert compare_to_teacher(tracking_table([])) == "No tracking rows to compare."


@pytest.mark.parametrize(
    "d_hota, d_mota, word",
    [
        (0.0, 0.0, "level"),  # a tie on both is not "mixed"
        (0.04, -0.04, "level"),  # below the shown precision
        (2.0, 0.0, "better"),  # one moves, the other does not disagree
        (0.0, -2.0, "worse"),
        (2.0, -2.0, "mixed"),
    ],
)
def test_compare_to_teacher_on_ties(d_hota, d_mota, word):
    rows = _rows("teacher zero-shot", "bytetrack", (40, 30), (30, 20))
    rows += _rows("student", "bytetrack", (40 + d_hota, 30 + d_mota), (30, 20))
    text = compare_to_teacher(tracking_table(rows))
    sparse = next(line for line in text.splitlines() if line.startswith("- **sparse**"))
    assert f"the student tracks **{word}**" in sparse, sparse


def test_train_yolo_detector_rejects_an_unknown_task(params):
    with pytest.raises(ValueError, match="debris.yolo.task"):
        train_yolo_detector({}, ".", ".", {**params, "yolo": {**params["yolo"], "task": "seg"}}, 0)


def test_one_epoch_obb_student_trains_predicts_and_tracks(tmp_path, params):
    """Oriented boxes: ground truth obb labels -> yolo11n-obb one epoch -> hull boxes + corners
    -> trackers."""
    data = make_videos(params, tmp_path / "data", progress=False)
    obb_params = {**params, "yolo": {**params["yolo"], "task": "obb"}}
    student = train_yolo_detector(
        data["train"].instances, data["train"].image_dir, tmp_path / "obb", obb_params, 0
    )
    assert student.task == "obb" and student.model_source.endswith("-obb.yaml")
    label = next((tmp_path / "obb" / "dataset" / "labels" / "train").glob("*.txt"))
    assert all(len(line.split()) == 9 for line in label.read_text().splitlines())
    preds = {s: student.predict(data[s]) for s in ("test_sparse", "test_dense")}
    size = params["sim"]["size"]
    assert preds["test_sparse"], "even one epoch predicts something at conf 0.001"
    for r in preds["test_sparse"][:20]:  # bbox: the hull of the corners, clipped to the frame
        x, y, w, h = r["bbox"]
        xs, ys = np.clip(r["obb"][0::2], 0, size), np.clip(r["obb"][1::2], 0, size)
        assert (x, y, x + w, y + h) == pytest.approx(
            (xs.min(), ys.min(), xs.max(), ys.max()), abs=0.02
        )
    rows = score_detector("Oracle obb", preds, data, params)
    assert {r["split"] for r in rows} == {"sparse", "dense"}


def _mask_results(instances):
    """The ground truth as results with masks: each streak's padded rectangle rasterised."""
    import cv2

    from afss_utils.coco import mask_to_rle
    from afss_utils.debris.obb import streak_corners

    out = []
    size = {im["id"]: (im["height"], im["width"]) for im in instances["images"]}
    for a in instances["annotations"]:
        mask = np.zeros(size[a["image_id"]], np.uint8)
        corners = streak_corners(np.array(a["endpoints"]), a["width"], pad=1.0)[0]
        cv2.fillPoly(mask, [np.round(corners - 0.5).astype(np.int32)], 1)
        rle = mask_to_rle(mask.astype(bool))
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": 1,
                "bbox": a["bbox"],
                "score": 0.9,
                "segmentation": rle,
                "gt_track": a["track_id"],
                "gt_ends": a["endpoints"],
            }
        )
    return out


def test_endpoint_labels_recover_endpoints_and_link_tracks(tmp_path):
    from dataclasses import replace

    from afss_utils.coco import load_instances
    from afss_utils.debris.simulation import DebrisConfig, generate_dataset
    from afss_utils.debris.stage import endpoint_labels

    cfg = replace(DebrisConfig(), size=96, frames=6, debris=(2, 2), speed=(3.0, 5.0))
    paths = generate_dataset(tmp_path, {"test_sparse": 3}, cfg, seed=4, progress=False)
    instances = load_instances(paths["test_sparse"])
    results = _mask_results(instances)
    labels = endpoint_labels(results, instances["images"], radius=10.0, width=2.0)
    assert len(labels) == len(results)
    video = {im["id"]: im["video_id"] for im in instances["images"]}
    pairs = set()
    for lab, res in zip(labels, results, strict=True):  # same order: one video, frames in turn
        e, g = np.reshape(lab["endpoints"], (2, 2)), np.reshape(res["gt_ends"], (2, 2))
        err = min(np.abs(e - g).max(), np.abs(e[::-1] - g).max())
        assert err < 1.6, (e, g)
        pairs.add((video[lab["image_id"]], lab["track_id"], res["gt_track"]))
    # one pseudo track per true track and video: the links follow the simulator's tracks
    assert len({p[1] for p in pairs}) == len(pairs) == len({(p[0], p[2]) for p in pairs})
    assert endpoint_labels([], instances["images"], radius=10.0) == []
    with pytest.raises(ValueError, match="no mask"):
        endpoint_labels([{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}], instances["images"], 5)
    with pytest.raises(ValueError, match="radius"):
        endpoint_labels(results, instances["images"], radius=0)
