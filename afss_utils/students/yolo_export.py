"""COCO instances -> ultralytics YOLO dataset (images linked, label txt files, ``data.yaml``);
masks become polygons (:func:`mask_to_polygons`).
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from afss_utils import coco
from afss_utils.debris import obb

# ---------------------------------------------------------------------------- ultralytics export


def mask_to_polygons(
    mask: np.ndarray, mode: str = "largest", min_area: float = 1.0
) -> list[np.ndarray]:
    """Outer contours of a (H, W) bool mask as (K, 2) float xy pixel polygons (K >= 3).

    Vertices trace the outer *edges* of the boundary pixels (continuous coordinates, pixel i
    spans [i, i+1]), so the polygon's area equals the mask's and rasterisers (COCO, cv2.fillPoly
    at another resolution) give the mask back. Holes are not kept (one polygon per instance).
    mode: ``'largest'`` keeps the largest external contour, ``'all'`` every one; contours with
    fewer than 3 vertices or an area below ``min_area`` px^2 (between pixel centres) are
    dropped, so an empty list means none was usable.
    """
    if mode not in ("largest", "all"):
        raise ValueError(f"polygon mode must be 'largest' or 'all', got {mode!r}")
    m = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
    if m.ndim != 2 or not m.any():
        return []
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [c.reshape(-1, 2).astype(np.float64) for c in contours]
    polys = [p for p in polys if len(p) >= 3 and abs(_polygon_area(p)) >= min_area]
    if mode == "largest" and polys:
        polys = [max(polys, key=lambda p: abs(_polygon_area(p)))]
    # cv2 contours run through boundary pixel centres; push them half a pixel outwards
    return [_offset_outward(p, 0.5) + 0.5 for p in polys]


def _polygon_area(poly: np.ndarray) -> float:
    """Signed shoelace area of a (K, 2) polygon."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _offset_outward(poly: np.ndarray, d: float) -> np.ndarray:
    """Move every vertex so both adjacent edges shift ``d`` outwards (a mitred offset; the
    mitre is capped at spikes, where the two edges fold back on each other)."""

    def unit_normals(e: np.ndarray) -> np.ndarray:
        n = np.stack([e[:, 1], -e[:, 0]], axis=1)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    n_in = unit_normals(poly - np.roll(poly, 1, axis=0))
    n_out = unit_normals(np.roll(poly, -1, axis=0) - poly)
    denom = np.maximum(1.0 + (n_in * n_out).sum(axis=1, keepdims=True), 0.5)
    shift = d * (n_in + n_out) / denom
    return poly - shift if _polygon_area(poly) < 0 else poly + shift


def _merge_polygons(polys: list[np.ndarray]) -> np.ndarray:
    """One polygon from several (ultralytics' label format allows one per line): joined by thin
    bridges as ultralytics' own COCO converter does."""
    if len(polys) == 1:
        return polys[0]
    from ultralytics.data.converter import merge_multi_segment

    parts = merge_multi_segment([p.reshape(-1).tolist() for p in polys])
    return np.concatenate([np.asarray(p).reshape(-1, 2) for p in parts], axis=0)


@dataclass
class ExportReport:
    """What :func:`export_yolo` wrote for one split."""

    images: int = 0
    instances: int = 0
    box_fallbacks: int = 0  # segment task: instances written as their box (no usable polygon)


def yolo_label_lines(
    anns: list[dict],
    width: int,
    height: int,
    task: str,
    polygon_mode: str = "largest",
    report: ExportReport | None = None,
) -> list[str]:
    """ultralytics label lines (class 0) for one image's COCO annotations.

    detect: ``0 cx cy w h`` normalised; obb: ``0 x1 y1 ... x4 y4`` normalised corners
    (:func:`afss_utils.debris.obb.annotation_corners`); segment: ``0 x1 y1 x2 y2 ...`` normalised
    polygon from the RLE mask (an annotation without a mask or with only degenerate contours
    becomes its box rectangle, counted in ``report.box_fallbacks``).
    """
    lines = []
    for ann in anns:
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0:
            continue
        if task == "detect":
            vals = [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]
        elif task == "obb":  # 0 x1 y1 ... x4 y4: the annotation's oriented box (debris.obb)
            lines.append(
                obb.obb_label_line(obb.annotation_corners(ann, height, width), width, height)
            )
            continue
        else:
            polys = []
            if "segmentation" in ann:
                mask = coco.rle_to_mask(ann["segmentation"], height, width)
                polys = mask_to_polygons(mask, polygon_mode)
            if polys:
                poly = _merge_polygons(polys)
            else:
                poly = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
                if report is not None:
                    report.box_fallbacks += 1
            vals = (poly / np.array([width, height])).reshape(-1).tolist()
        vals = np.clip(vals, 0.0, 1.0)
        lines.append("0 " + " ".join(f"{v:.6f}" for v in vals))
    return lines


def _subset_instances(instances: dict, image_ids: set[int]) -> dict:
    return coco.make_instances(
        [img for img in instances["images"] if img["id"] in image_ids],
        [a for a in instances["annotations"] if a["image_id"] in image_ids],
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # filesystems without symlinks
        shutil.copyfile(src, dst)


def _export_split(
    instances: dict, image_dir: Path, out_dir: Path, split: str, task: str, polygon_mode: str
) -> ExportReport:
    img_out, lbl_out = out_dir / "images" / split, out_dir / "labels" / split
    for d in (img_out, lbl_out):
        if d.exists():
            shutil.rmtree(d)  # a stale label file would silently become training data
        d.mkdir(parents=True)
    anns: dict[int, list[dict]] = defaultdict(list)
    for a in instances["annotations"]:
        anns[a["image_id"]].append(a)
    report = ExportReport()
    for img in instances["images"]:
        src = Path(image_dir) / img["file_name"]
        if not src.is_file():
            raise FileNotFoundError(f"image of id {img['id']} not found: {src}")
        # ids make the flat names unique even when file_names repeat across sub-folders
        stem = f"{img['id']}_{Path(img['file_name']).stem}"
        _link_or_copy(src, img_out / f"{stem}{src.suffix}")
        lines = yolo_label_lines(
            anns[img["id"]], img["width"], img["height"], task, polygon_mode, report
        )
        (lbl_out / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        report.images += 1
        report.instances += len(lines)
    return report


def export_yolo(
    instances: dict,
    image_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    task: str = "segment",
    val: tuple[dict, str | os.PathLike] | None = None,
    polygon_mode: str = "largest",
    val_fallback: int = 16,
) -> Path:
    """Write a COCO instances set as an ultralytics dataset; returns the path of ``data.yaml``.

    Layout: ``out_dir/images/{train,val}`` (symlinks, copies where links fail),
    ``out_dir/labels/{train,val}/*.txt`` and ``out_dir/data.yaml`` (``names: {0: spacecraft}``).
    val: ``(instances, image_dir)`` of a validation set; without it the first ``val_fallback``
    training images form the validation split (ultralytics requires one; it only drives the
    final-epoch metrics, and a small one keeps that cheap). The per-split
    :class:`ExportReport` is written into ``data.yaml`` under ``afss_export``.
    """
    if task not in ("detect", "segment", "obb"):
        raise ValueError(f"task must be 'detect', 'segment' or 'obb', got {task!r}")
    out_dir = Path(out_dir).resolve()
    reports = {
        "train": _export_split(instances, Path(image_dir), out_dir, "train", task, polygon_mode)
    }
    if val is None:
        keep = {img["id"] for img in instances["images"][:val_fallback]}
        val = (_subset_instances(instances, keep), image_dir)
    reports["val"] = _export_split(val[0], Path(val[1]), out_dir, "val", task, polygon_mode)
    data = {
        "path": str(out_dir),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "spacecraft"},
        "afss_export": {k: vars(v) for k, v in reports.items()},
    }
    path = out_dir / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
