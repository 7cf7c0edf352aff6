"""COCO core: boxes, masks, records, files; and the Prediction dataclass that emits results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from afss_utils import coco
from afss_utils.teachers.base import Prediction


# ---------------------------------------------------------------------------- masks
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (32, 32), (64, 48)])
def test_rle_round_trip_random_masks(shape):
    rng = np.random.default_rng(sum(shape))
    for density in (0.05, 0.5, 0.95):
        mask = rng.random(shape) < density
        rle = coco.mask_to_rle(mask)
        assert rle["size"] == list(shape) and isinstance(rle["counts"], str)
        json.dumps(rle)  # json-ready
        np.testing.assert_array_equal(coco.rle_to_mask(rle), mask)
        # bytes counts (what pycocotools emits) decode the same
        as_bytes = {"size": rle["size"], "counts": rle["counts"].encode()}
        np.testing.assert_array_equal(coco.rle_to_mask(as_bytes), mask)


def test_rle_empty_and_full_masks():
    for mask in (np.zeros((5, 9), bool), np.ones((5, 9), bool)):
        back = coco.rle_to_mask(coco.mask_to_rle(mask))
        assert back.dtype == bool and back.shape == (5, 9)
        np.testing.assert_array_equal(back, mask)


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, starting with zeros."""
    flat = mask.T.reshape(-1).astype(int)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def test_uncompressed_rle():
    rng = np.random.default_rng(1)
    mask = rng.random((6, 10)) < 0.4
    np.testing.assert_array_equal(coco.rle_to_mask(_uncompressed_rle(mask)), mask)


def test_polygons():
    square = [[0, 0, 10, 0, 10, 10, 0, 10]]
    mask = coco.rle_to_mask(square, 16, 20)
    assert mask.shape == (16, 20) and mask.sum() == 100
    np.testing.assert_array_equal(coco.mask_to_xyxy(mask), [0, 0, 10, 10])
    two = coco.rle_to_mask([*square, [12, 12, 16, 12, 16, 16, 12, 16]], 16, 20)
    assert two.sum() == 100 + 16
    assert not coco.rle_to_mask([], 4, 4).any()
    with pytest.raises(ValueError, match="height and width"):
        coco.rle_to_mask(square)
    with pytest.raises(ValueError, match="unsupported"):
        coco.rle_to_mask("nope")


# ---------------------------------------------------------------------------- boxes
def test_box_format_round_trip():
    xyxy = np.array([[1.0, 2.0, 11.0, 7.5], [0.0, 0.0, 0.0, 0.0]])
    xywh = coco.xyxy_to_xywh(xyxy)
    np.testing.assert_array_equal(xywh, [[1, 2, 10, 5.5], [0, 0, 0, 0]])
    np.testing.assert_array_equal(coco.xywh_to_xyxy(xywh), xyxy)
    assert coco.xyxy_to_xywh([3, 4, 5, 6]).shape == (1, 4)  # one box, flat
    assert coco.xyxy_to_xywh(np.zeros((0, 4))).shape == (0, 4)


def test_mask_to_xyxy_is_exclusive():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(coco.mask_to_xyxy(mask), [3, 2, 9, 5])
    assert coco.mask_to_xyxy(np.zeros((4, 4), bool)) is None


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], float)
    iou = coco.box_iou(a, b)
    assert iou.shape == (2, 4)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0, 0.0])
    assert coco.box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    assert coco.box_iou(a, np.zeros((0, 4))).shape == (2, 0)


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert coco.mask_iou(a, b) == 0.0
    a[:2] = True
    b[1:3] = True
    assert coco.mask_iou(a, b) == pytest.approx(4 / 12)


# ---------------------------------------------------------------------------- records
def test_make_annotation_from_mask_and_box():
    mask = np.zeros((20, 30), bool)
    mask[5:10, 2:8] = True
    mask[9, 20] = True  # a thin part widens the box, not the area much
    ann = coco.make_annotation(3, 7, mask=mask, domain="earth")
    assert ann["bbox"] == [2.0, 5.0, 19.0, 5.0]
    assert ann["area"] == 31.0 and ann["iscrowd"] == 0 and ann["category_id"] == coco.CATEGORY_ID
    assert ann["domain"] == "earth"
    np.testing.assert_array_equal(coco.rle_to_mask(ann["segmentation"]), mask)
    box_only = coco.make_annotation(4, 7, box_xyxy=np.array([1, 2, 5, 10]))
    assert box_only["bbox"] == [1.0, 2.0, 4.0, 8.0] and box_only["area"] == 32.0
    assert "segmentation" not in box_only
    with pytest.raises(ValueError, match="empty mask"):
        coco.make_annotation(5, 7, mask=np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="needs a mask or a box"):
        coco.make_annotation(6, 7)


def test_instances_file_round_trip(tmp_path):
    mask = np.zeros((8, 8), bool)
    mask[1:4, 2:6] = True
    inst = coco.make_instances(
        [coco.make_image(1, "a.png", 8, 8)], [coco.make_annotation(1, 1, mask=mask)], {"v": 1}
    )
    path = coco.save_json(inst, tmp_path / "sub" / "inst.json")
    back = coco.load_instances(path)
    assert back == json.loads(json.dumps(inst))
    assert back["categories"] == coco.CATEGORIES
    np.testing.assert_array_equal(coco.rle_to_mask(back["annotations"][0]["segmentation"]), mask)


def test_result_record_and_results_round_trip(tmp_path):
    mask = np.zeros((6, 6), bool)
    mask[2:4, 1:5] = True
    rec = coco.result_record(
        9, np.array([1, 2, 5, 4]), np.float32(0.123456789), mask, iou=np.float32(0.5)
    )
    assert rec["bbox"] == [1.0, 2.0, 4.0, 2.0] and rec["score"] == 0.12346
    assert isinstance(rec["iou"], float)
    path = coco.save_json([rec], tmp_path / "res.json")
    assert coco.load_results(path) == [rec]
    assert coco.load_results(coco.save_json([], tmp_path / "empty.json")) == []


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "data, field",
    [
        ([], "<root>"),
        ({"annotations": []}, "images"),
        ({"images": [{"id": 1, "file_name": "a", "width": 2}], "annotations": []}, "images[0].height"),
        ({"images": [], "annotations": [{"id": 1, "bbox": [0, 0, 1, 1]}]}, "annotations[0].image_id"),
        (
            {"images": [{"id": 1, "file_name": "a", "width": 2, "height": 2}],
             "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 1]}]},
            "annotations[0].bbox",
        ),
        (
            {"images": [{"id": 1, "file_name": "a", "width": 2, "height": 2}],
             "annotations": [{"id": 1, "image_id": 2, "bbox": [0, 0, 1, 1]}]},
            "annotations[0].image_id",
        ),
        (
            {"images": [{"id": 7, "file_name": "a", "width": 2, "height": 2},
                        {"id": 7, "file_name": "b", "width": 2, "height": 2}],
             "annotations": []},
            "images[1].id",
        ),
    ],
)  # fmt: skip
def test_validate_instances_names_file_and_field(tmp_path, data, field):
    path = tmp_path / "bad_instances.json"
    path.write_text(json.dumps(data))
    with pytest.raises(coco.CocoFormatError) as exc:
        coco.load_instances(path)
    assert str(path) in str(exc.value) and f"'{field}'" in str(exc.value)


def test_validate_instances_fills_defaults():
    data = {
        "images": [{"id": 1, "file_name": "a", "width": 4, "height": 4}],
        "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 2, 3]}],
    }
    out = coco.validate_instances(data)
    ann = out["annotations"][0]
    assert (ann["area"], ann["iscrowd"], ann["category_id"]) == (6, 0, coco.CATEGORY_ID)
    assert out["categories"] == coco.CATEGORIES


def test_validate_instances_drops_empty_segmentations():
    data = {
        "images": [{"id": 1, "file_name": "a", "width": 4, "height": 4}],
        "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 2, 3], "segmentation": []}],
    }
    assert "segmentation" not in coco.validate_instances(data)["annotations"][0]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"image_id": 1}, "<root>"),
        ([{"image_id": 1, "bbox": [0, 0, 1, 1]}], "[0].score"),
        (
            [
                {"image_id": 1, "score": 1.0, "bbox": [0, 0, 1, 1]},
                {"bbox": [0, 0, 1, 1], "score": 1},
            ],
            "[1].image_id",
        ),
        ([{"image_id": 1, "score": 1.0, "bbox": "0 0 1 1"}], "[0].bbox"),
        ([{"image_id": 1, "score": 87.5, "bbox": [0, 0, 1, 1]}], "[0].score"),
        ([{"image_id": 1, "score": -0.1, "bbox": [0, 0, 1, 1]}], "[0].score"),
        ([{"image_id": 1, "score": "high", "bbox": [0, 0, 1, 1]}], "[0].score"),
    ],
)
def test_validate_results_names_file_and_field(tmp_path, data, field):
    path = tmp_path / "bad_results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(coco.CocoFormatError) as exc:
        coco.load_results(path)
    assert str(path) in str(exc.value) and f"'{field}'" in str(exc.value)


def test_read_json_errors_name_file(tmp_path):
    with pytest.raises(coco.CocoFormatError, match=r"missing\.json: file not found"):
        coco.read_json(tmp_path / "missing.json")
    bad = tmp_path / "truncated.json"
    bad.write_text('{"images": [')
    with pytest.raises(coco.CocoFormatError, match=r"truncated\.json: not valid json"):
        coco.read_json(bad)


def test_save_json_is_atomic(tmp_path, monkeypatch):
    path = coco.save_json({"good": 1}, tmp_path / "out.json")

    def broken_dump(obj, fh, **kwargs):
        fh.write('{"half": ')
        raise RuntimeError("disk full")

    monkeypatch.setattr(coco.json, "dump", broken_dump)
    with pytest.raises(RuntimeError, match="disk full"):
        coco.save_json({"new": 2}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"good": 1}
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["out.json"]  # no temp file left
    with pytest.raises(TypeError):
        coco.save_json({"x": object()}, path)  # not serialisable: same guarantee
    assert json.loads(path.read_text()) == {"good": 1}


# ---------------------------------------------------------------------------- Prediction
def _prediction() -> Prediction:
    masks = np.zeros((3, 8, 8), bool)
    for i in range(3):
        masks[i, i : i + 3, i : i + 4] = True
    return Prediction(
        boxes=[[0, 0, 4, 3], [1, 1, 5, 4], [2, 2, 6, 5]],
        scores=[0.2, 0.9, 0.5],
        masks=masks,
        extra={"mask_scores": [0.1, 0.2, 0.3]},
    )


def test_prediction_top_k():
    p = _prediction()
    top = p.top_k(2)
    assert len(top) == 2
    np.testing.assert_allclose(top.scores, [0.9, 0.5])
    np.testing.assert_array_equal(top.boxes[0], [1, 1, 5, 4])
    np.testing.assert_array_equal(top.masks[0], p.masks[1])
    np.testing.assert_allclose(top.extra["mask_scores"], [0.2, 0.3])
    assert len(p.top_k(None)) == 3 and len(p.top_k(10)) == 3
    assert len(p.top_k(0)) == 0
    assert p.boxes.dtype == np.float32 and p.scores.dtype == np.float32


def test_prediction_empty():
    e = Prediction.empty(6, 9)
    assert len(e) == 0 and e.boxes.shape == (0, 4) and e.masks.shape == (0, 6, 9)
    assert e.to_results(1) == []
    assert len(e.top_k(1)) == 0
    assert Prediction.empty(6, 9, with_masks=False).masks is None


def test_prediction_to_results():
    p = _prediction()
    recs = p.to_results(42)
    assert [r["image_id"] for r in recs] == [42, 42, 42]
    assert recs[1]["bbox"] == [1.0, 1.0, 4.0, 3.0] and recs[1]["score"] == pytest.approx(0.9)
    assert recs[2]["mask_scores"] == pytest.approx(0.3)
    np.testing.assert_array_equal(coco.rle_to_mask(recs[0]["segmentation"]), p.masks[0])
    json.dumps(recs)
    box_only = Prediction(p.boxes, p.scores)
    assert "segmentation" not in box_only.to_results(1)[0]
    assert coco.validate_results(recs) == recs


def test_prediction_shape_errors():
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        Prediction(np.zeros((2, 4)), np.zeros(1))
    with pytest.raises(ValueError, match="masks must be"):
        Prediction(np.zeros((2, 4)), np.zeros(2), masks=np.zeros((1, 4, 4), bool))


# ----------------------------------------------------------------------------- atomic writes
def test_save_json_gets_the_umask_mode_and_leaves_no_temp_file(tmp_path):
    import os

    from afss_utils.coco import atomic_writer, save_json

    old = os.umask(0o022)
    try:
        path = save_json({"a": 1}, tmp_path / "x.json")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert json.loads(path.read_text()) == {"a": 1}
    (tmp_path / ".x.json.abc.tmp").write_text("left by a SIGKILL")
    with pytest.raises(KeyboardInterrupt), atomic_writer(path) as fh:
        fh.write("half")
        raise KeyboardInterrupt
    assert json.loads(path.read_text()) == {"a": 1}  # the previous file is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    assert save_json([], tmp_path / "sub" / "e.json").read_text() == "[]"
