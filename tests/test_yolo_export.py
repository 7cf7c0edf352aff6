"""COCO -> ultralytics export: masks to polygons, label lines per task, data.yaml."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from afss_utils import coco
from afss_utils.students.yolo_export import export_yolo, mask_to_polygons


def _blob_mask(h: int = 96, w: int = 128) -> np.ndarray:
    """An irregular single-component shape without holes: an ellipse with a rectangular arm
    and a notch bitten out of its top edge."""
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (50, 48), (30, 20), 20, 0, 360, 1, -1)
    cv2.rectangle(m, (70, 40), (115, 52), 1, -1)
    cv2.circle(m, (45, 28), 7, 0, -1)
    return m.astype(bool)


def test_mask_to_polygons_modes_and_degenerate_cases():
    assert mask_to_polygons(np.zeros((10, 10), bool)) == []
    single = np.zeros((10, 10), bool)
    single[4, 4] = True
    assert mask_to_polygons(single) == []  # a 1-pixel contour has no area
    two = np.zeros((40, 40), bool)
    two[2:20, 2:20] = True
    two[30:35, 30:35] = True
    largest = mask_to_polygons(two, "largest")
    assert len(largest) == 1 and largest[0][:, 0].max() == 20  # the outer edge of pixel 19
    np.testing.assert_allclose(
        sorted({tuple(v) for v in largest[0]}), [[2, 2], [2, 20], [20, 2], [20, 20]]
    )
    assert len(mask_to_polygons(two, "all")) == 2
    with pytest.raises(ValueError, match="largest"):
        mask_to_polygons(two, "biggest")


def _read_labels(path: Path) -> list[np.ndarray]:
    return [np.array(line.split(), float) for line in path.read_text().splitlines()]


def _setup_export(tmp_path: Path, anns_extra: list[dict] | None = None):
    h, w = 96, 128
    img_dir = tmp_path / "src"
    img_dir.mkdir()
    mask = _blob_mask(h, w)
    cv2.imwrite(str(img_dir / "a.png"), np.zeros((h, w, 3), np.uint8))
    cv2.imwrite(str(img_dir / "b.png"), np.zeros((h, w, 3), np.uint8))
    images = [coco.make_image(1, "a.png", w, h), coco.make_image(2, "b.png", w, h)]
    anns = [coco.make_annotation(1, 1, mask=mask)] + (anns_extra or [])
    return coco.make_instances(images, anns), img_dir, mask


def test_export_segment_polygon_round_trips_to_mask(tmp_path: Path):
    inst, img_dir, mask = _setup_export(tmp_path)
    data_yaml = export_yolo(inst, img_dir, tmp_path / "yolo", task="segment")
    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == {0: "spacecraft"} and data["train"] == "images/train"
    assert (Path(data["path"]) / data["val"]).is_dir()  # a val split exists even without one given
    assert data["afss_export"]["train"] == {"images": 2, "instances": 1, "box_fallbacks": 0}
    (line,) = _read_labels(tmp_path / "yolo" / "labels" / "train" / "1_a.txt")
    assert line[0] == 0 and len(line) % 2 == 1 and len(line) >= 7
    poly = line[1:].reshape(-1, 2) * [128, 96]
    back = mask_utils.decode(mask_utils.frPyObjects([poly.reshape(-1).tolist()], 96, 128))[..., 0]
    assert coco.mask_iou(back.astype(bool), mask) > 0.95
    # the unlabelled image is a background image: present, with an empty label file
    assert (tmp_path / "yolo" / "labels" / "train" / "2_b.txt").read_text() == ""
    assert (tmp_path / "yolo" / "images" / "train" / "2_b.png").exists()


def test_export_detect_writes_normalised_center_boxes(tmp_path: Path):
    inst, img_dir, mask = _setup_export(tmp_path)
    export_yolo(inst, img_dir, tmp_path / "yolo", task="detect", val=(inst, img_dir))
    (line,) = _read_labels(tmp_path / "yolo" / "labels" / "train" / "1_a.txt")
    x, y, w, h = inst["annotations"][0]["bbox"]
    np.testing.assert_allclose(
        line, [0, (x + w / 2) / 128, (y + h / 2) / 96, w / 128, h / 96], atol=1e-6
    )
    labels = tmp_path / "yolo" / "labels"
    assert (labels / "val" / "1_a.txt").read_text() == (labels / "train" / "1_a.txt").read_text()


def test_export_obb_writes_corner_lines_from_obb_mask_or_box(tmp_path: Path):
    diag = [[10, 10], [30, 30], [28, 32], [8, 12]]  # a thin diagonal streak's oriented box
    extra = [
        {**coco.make_annotation(2, 2, box_xyxy=np.array([8, 10, 30, 32])), "obb": sum(diag, [])},
        coco.make_annotation(3, 2, box_xyxy=np.array([40, 20, 50, 60])),  # box only
    ]
    inst, img_dir, mask = _setup_export(tmp_path, extra)
    export_yolo(inst, img_dir, tmp_path / "yolo", task="obb")
    labels = tmp_path / "yolo" / "labels" / "train"
    lines = np.array(_read_labels(labels / "2_b.txt"))
    assert lines.shape == (2, 9) and (lines[:, 0] == 0).all()
    np.testing.assert_allclose(lines[0, 1:].reshape(4, 2) * [128, 96], diag, atol=1e-3)
    np.testing.assert_allclose(
        lines[1, 1:].reshape(4, 2) * [128, 96], [[40, 20], [50, 20], [50, 60], [40, 60]], atol=1e-3
    )
    (line,) = _read_labels(labels / "1_a.txt")  # mask only: its minimum-area rectangle
    ys, xs = np.nonzero(mask)
    corners = line[1:].reshape(4, 2) * [128, 96]
    assert corners[:, 0].min() <= xs.min() + 0.5 and corners[:, 0].max() >= xs.max() + 0.5
    assert corners[:, 1].min() <= ys.min() + 0.5 and corners[:, 1].max() >= ys.max() + 0.5


def test_export_segment_without_usable_mask_falls_back_to_box(tmp_path: Path):
    tiny = np.zeros((96, 128), bool)
    tiny[5, 5] = True
    extra = [
        coco.make_annotation(2, 2, box_xyxy=np.array([10, 20, 50, 60])),  # box-only pseudo-label
        coco.make_annotation(3, 2, mask=tiny),  # degenerate contour
    ]
    inst, img_dir, _ = _setup_export(tmp_path, extra)
    data = yaml.safe_load(export_yolo(inst, img_dir, tmp_path / "yolo").read_text())
    assert data["afss_export"]["train"]["box_fallbacks"] == 2
    lines = _read_labels(tmp_path / "yolo" / "labels" / "train" / "2_b.txt")
    np.testing.assert_allclose(
        lines[0][1:].reshape(-1, 2) * [128, 96], [[10, 20], [50, 20], [50, 60], [10, 60]], atol=1e-3
    )


def test_export_rejects_missing_image_and_bad_task(tmp_path: Path):
    inst, img_dir, _ = _setup_export(tmp_path)
    with pytest.raises(ValueError, match="task"):
        export_yolo(inst, img_dir, tmp_path / "y", task="pose")
    (img_dir / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match="b.png"):
        export_yolo(inst, img_dir, tmp_path / "y")
