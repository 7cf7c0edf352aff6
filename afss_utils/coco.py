"""COCO as the study's one interchange format.

- *instances* json (datasets, pseudo-label training sets): ``images``, ``annotations``
  (``bbox`` xywh pixels, ``segmentation`` RLE with str counts, ``area``, ``iscrowd`` 0),
  ``categories`` (one: ``spacecraft`` id 1).
- *results* json (predictions, pseudo-labels): a list of ``{image_id, category_id, bbox,
  score, segmentation?}``, what ``COCO.loadRes`` reads.

Writers are atomic (temp file + rename) so an interrupted write never destroys a good file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from pycocotools import mask as mask_utils

CATEGORY_ID = 1
CATEGORIES = [{"id": CATEGORY_ID, "name": "spacecraft", "supercategory": "spacecraft"}]


class CocoFormatError(ValueError):
    """A COCO file is unreadable or lacks a field; the message names the file and the field."""


# ---------------------------------------------------------------------------- boxes
def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N, 4) xywh, same units."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xywh -> (N, 4) xyxy, same units."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)


def mask_to_xyxy(mask: np.ndarray) -> np.ndarray | None:
    """Tight box of a (H, W) bool mask as (4,) xyxy pixels (x2, y2 exclusive); None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) between (N, 4) and (M, 4) xyxy boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks; 0 when both are empty."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


# ---------------------------------------------------------------------------- masks
def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool mask -> COCO RLE ``{"size": [H, W], "counts": str}`` (json-ready)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_to_mask(
    segmentation: Any, height: int | None = None, width: int | None = None
) -> np.ndarray:
    """COCO segmentation (RLE with str/bytes counts, uncompressed RLE, or polygons) -> (H, W) bool.

    Polygons and uncompressed RLE need ``height`` and ``width`` (taken from the RLE otherwise).
    """
    seg = segmentation
    if isinstance(seg, dict):
        h, w = seg["size"]
        counts = seg["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = {
                "size": [h, w],
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
            }
        return mask_utils.decode(rle).astype(bool)
    if isinstance(seg, list):
        if height is None or width is None:
            raise ValueError("polygon segmentation needs height and width")
        if len(seg) == 0:
            return np.zeros((height, width), dtype=bool)
        rles = mask_utils.frPyObjects(seg, height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    raise ValueError(f"unsupported segmentation type {type(seg).__name__}")


# ---------------------------------------------------------------------------- records
def make_image(image_id: int, file_name: str, width: int, height: int, **extra: Any) -> dict:
    """One ``images`` entry; extra keys (e.g. ``domain``) are kept, COCO tools ignore them."""
    return {
        "id": int(image_id),
        "file_name": file_name,
        "width": int(width),
        "height": int(height),
        **extra,
    }


def make_annotation(
    ann_id: int,
    image_id: int,
    mask: np.ndarray | None = None,
    box_xyxy: np.ndarray | None = None,
    **extra: Any,
) -> dict:
    """One ``annotations`` entry from a (H, W) bool mask (box = its tight box) or an xyxy box.

    With a mask, ``area`` is the mask's pixel count; with a box only, the box area.
    """
    ann: dict[str, Any] = {
        "id": int(ann_id),
        "image_id": int(image_id),
        "category_id": CATEGORY_ID,
        "iscrowd": 0,
    }
    if mask is not None:
        box = mask_to_xyxy(mask) if box_xyxy is None else np.asarray(box_xyxy, dtype=np.float64)
        if box is None:
            raise ValueError(f"annotation {ann_id}: empty mask for image {image_id}")
        ann["segmentation"] = mask_to_rle(mask)
        ann["area"] = float(np.count_nonzero(mask))
    elif box_xyxy is not None:
        box = np.asarray(box_xyxy, dtype=np.float64)
        ann["area"] = float(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
    else:
        raise ValueError("make_annotation needs a mask or a box")
    ann["bbox"] = [round(float(v), 2) for v in xyxy_to_xywh(box)[0]]
    ann.update(extra)
    return ann


def make_instances(images: list[dict], annotations: list[dict], info: dict | None = None) -> dict:
    """A complete instances dict with the study's single category."""
    out = {"images": images, "annotations": annotations, "categories": list(CATEGORIES)}
    if info:
        out["info"] = info
    return out


def result_record(
    image_id: int, box_xyxy: np.ndarray, score: float, mask: np.ndarray | None = None, **extra: Any
) -> dict:
    """One COCO results entry: ``bbox`` xywh pixels, ``score``, optional RLE ``segmentation``."""
    rec: dict[str, Any] = {
        "image_id": int(image_id),
        "category_id": CATEGORY_ID,
        "bbox": [round(float(v), 2) for v in xyxy_to_xywh(box_xyxy)[0]],
        "score": round(float(score), 5),
    }
    if mask is not None:
        rec["segmentation"] = mask_to_rle(mask)
    for k, v in extra.items():
        rec[k] = float(v) if isinstance(v, (np.floating, np.integer)) else v
    return rec


# ---------------------------------------------------------------------------- files
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[TextIO]:
    """Open a text stream whose content replaces ``path`` only when the block ends cleanly.

    A crash or Ctrl-C mid-write leaves the previous file intact and no temporary file behind
    (a SIGKILL can leave a hidden ``.<name>.*`` beside it, removed by the next write). The file
    gets the mode a plain ``open(path, "w")`` would (0666 minus the user's umask), not
    ``mkstemp``'s 0600. The one atomic writer of the package: coco, run and pseudolabel use it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(obj: Any, path: str | os.PathLike, indent: int | None = None) -> Path:
    """Write json atomically (:func:`atomic_writer`); ``indent`` for files people read."""
    path = Path(path)
    with atomic_writer(path) as fh:
        json.dump(obj, fh, indent=indent, default=str if indent else None)
        if indent:
            fh.write("\n")
    return path


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CocoFormatError(f"{path}: file not found")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CocoFormatError(f"{path}: not valid json ({exc})") from exc


def _require(cond: bool, path: Any, field: str, why: str) -> None:
    if not cond:
        raise CocoFormatError(f"{path}: field '{field}' {why}")


def validate_instances(data: Any, source: Any = "<instances>") -> dict:
    """Check the fields the study relies on; raise CocoFormatError naming ``source`` and field."""
    _require(
        isinstance(data, dict),
        source,
        "<root>",
        "must be an object with images/annotations/categories",
    )
    for key in ("images", "annotations"):
        _require(isinstance(data.get(key), list), source, key, "is missing or not a list")
    image_ids = set()
    for i, img in enumerate(data["images"]):
        for f in ("id", "file_name", "width", "height"):
            _require(isinstance(img, dict) and f in img, source, f"images[{i}].{f}", "is missing")
        # a repeated id would silently drop one of the images from every evaluation
        _require(img["id"] not in image_ids, source, f"images[{i}].id", f"{img['id']} is repeated")
        image_ids.add(img["id"])
    for i, ann in enumerate(data["annotations"]):
        for f in ("id", "image_id", "bbox"):
            _require(
                isinstance(ann, dict) and f in ann, source, f"annotations[{i}].{f}", "is missing"
            )
        _require(
            isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4,
            source,
            f"annotations[{i}].bbox",
            "must be [x, y, w, h]",
        )
        _require(
            ann["image_id"] in image_ids,
            source,
            f"annotations[{i}].image_id",
            f"{ann['image_id']} names no image",
        )
    data.setdefault("categories", list(CATEGORIES))
    for ann in data["annotations"]:
        # Box-only converters often write "segmentation": []; without this, such a dataset
        # would claim masks and mask AP would be computed against empty polygons.
        if "segmentation" in ann and not ann["segmentation"]:
            del ann["segmentation"]
        ann.setdefault("iscrowd", 0)
        ann.setdefault("category_id", CATEGORY_ID)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
    return data


def validate_results(data: Any, source: Any = "<results>") -> list[dict]:
    """Check a results list; raise CocoFormatError naming ``source`` and the field."""
    _require(
        isinstance(data, list),
        source,
        "<root>",
        "must be a list of detections (COCO results format)",
    )
    for i, rec in enumerate(data):
        for f in ("image_id", "bbox", "score"):
            _require(isinstance(rec, dict) and f in rec, source, f"[{i}].{f}", "is missing")
        _require(
            isinstance(rec["bbox"], list) and len(rec["bbox"]) == 4,
            source,
            f"[{i}].bbox",
            "must be [x, y, w, h]",
        )
        score = rec["score"]
        # the confidence filter's theta lives in [0, 1]; logits or percentages would pass it all
        _require(
            isinstance(score, (int, float)) and 0.0 <= score <= 1.0,
            source,
            f"[{i}].score",
            f"must be a confidence in [0, 1], got {score!r}",
        )
        rec.setdefault("category_id", CATEGORY_ID)
    return data


def load_instances(path: str | os.PathLike) -> dict:
    """Read and validate a COCO instances json."""
    return validate_instances(read_json(path), source=path)


def load_results(path: str | os.PathLike) -> list[dict]:
    """Read and validate a COCO results json."""
    return validate_results(read_json(path), source=path)


def results_by_image(results: list[dict] | str | os.PathLike) -> dict[int, list[dict]]:
    """Group a results list (or a results json path) by ``image_id``, best score first."""
    if not isinstance(results, list):
        results = load_results(results)
    out: dict[int, list[dict]] = {}
    for rec in sorted(results, key=lambda r: -r["score"]):
        out.setdefault(rec["image_id"], []).append(rec)
    return out
