"""COCO AP of predictions against ground truth, the one evaluator every stage uses.

``evaluate`` wraps pycocotools' ``COCOeval`` and returns ``{"AP", "AP50", "AP75"}`` in percent
(0-100), the numbers of the paper's tables: AP is the mean over IoU thresholds 0.50:0.05:0.95
(a match needs IoU >= threshold), 101-point interpolated, up to 100 detections per image, all
object sizes. For masks (``iou_type='segm'``) the predictions' ``bbox`` is dropped so that
``COCO.loadRes`` takes area and box from the mask (detectron2 does the same).

CLI::

    python -m afss_utils.evaluate --gt GT.json --pred PRED.json [--iou-type bbox|segm]

prints one JSON object ``{"AP": .., "AP50": .., "AP75": ..}``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import itertools
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from afss_utils import coco
from afss_utils.datasets import Dataset

IOU_TYPES = ("bbox", "segm")
METRICS = ("AP", "AP50", "AP75")
SIZES = ("small", "medium", "large")
SIZE_METRICS = tuple(f"AP {s}" for s in SIZES)
# COCO's size limits, 32^2 and 96^2 px of area, as shares of its typical 640 x 480 image, so
# that "small" means the same share of the frame at SPEED+'s 1920 x 1200 as at our 512 x 512:
# small < 0.33 % of the image area <= medium < 3.0 % <= large
SIZE_LIMITS = (32**2 / (640 * 480), 96**2 / (640 * 480))
# finer bins of box area as a share of the image area, four-fold apart (box sides two-fold):
# < 0.25 %, 0.25-1 %, 1-4 %, 4-16 %, >= 16 %, for AP against box size (ap_by_size_bins)
SIZE_BIN_EDGES = (0.0, 0.0025, 0.01, 0.04, 0.16, 1.0)
TASK_IOU_TYPE = {"box": "bbox", "mask": "segm"}

GroundTruth = dict | str | os.PathLike | Dataset
Predictions = list | str | os.PathLike


def _load_gt(gt: GroundTruth) -> tuple[dict, str]:
    """A private copy (COCOeval rewrites segmentations in place) and a name for errors."""
    if isinstance(gt, Dataset):
        return copy.deepcopy(gt.instances), str(gt.annotation_file or gt.name)
    if isinstance(gt, dict):
        return coco.validate_instances(copy.deepcopy(gt), "<ground truth>"), "<ground truth>"
    return coco.load_instances(gt), str(gt)


def _load_predictions(predictions: Predictions) -> tuple[list[dict], str]:
    """A private copy (``COCO.loadRes`` adds fields to every record) and a name for errors."""
    if isinstance(predictions, (str, os.PathLike)):
        return coco.load_results(predictions), str(predictions)
    return coco.validate_results(copy.deepcopy(list(predictions)), "<predictions>"), "<predictions>"


def _zeros() -> dict[str, float]:
    return dict.fromkeys(METRICS, 0.0)


def evaluate(
    gt: GroundTruth,
    predictions: Predictions,
    iou_type: str = "bbox",
    image_ids: Iterable[int] | None = None,
) -> dict[str, float]:
    """COCO AP, AP50, AP75 in percent (0-100) of ``predictions`` against ``gt``.

    gt:          COCO instances dict, path to an instances json, or a :class:`Dataset`
    predictions: COCO results list (``image_id``, ``bbox`` xywh pixels, ``score``, and RLE
                 ``segmentation`` for ``segm``) or the path to such a json
    iou_type:    'bbox' or 'segm' (mask IoU; needs segmentations in both GT and predictions)
    image_ids:   evaluate on these images only (e.g. one domain of a pooled test set);
                 predictions on other GT images are ignored. Default: all GT images.

    No predictions give zeros. Predictions naming images absent from ``gt`` are an error (they
    were made on another split). With a single GT category the category ids are not compared,
    so a json that numbers its one class 0 still matches predictions with ``category_id`` 1.
    """
    scores = _evaluate_all(gt, predictions, iou_type, image_ids)
    return {m: scores[m] for m in METRICS}


def _evaluate_all(
    gt: GroundTruth,
    predictions: Predictions,
    iou_type: str,
    image_ids: Iterable[int] | None,
) -> dict[str, float]:
    """One COCOeval run: AP, AP50, AP75, ``AP small`` / ``medium`` / ``large`` (NaN for a size
    without ground truth) and the GT objects per size ``n small`` ..., in percent. The size
    limits only split the objects; AP over all sizes is COCO's whatever they are."""
    instances, preds, eval_ids, gt_anns, gt_name = _prepare(gt, predictions, iou_type, image_ids)
    lo, hi = size_limits(instances, eval_ids)
    # COCOeval sorts a GT object by its annotation area (mask pixels here, as in COCO)
    areas = [a.get("area", a["bbox"][2] * a["bbox"][3]) for a in gt_anns]
    counts = {
        "small": sum(x < lo for x in areas),
        "medium": sum(lo <= x < hi for x in areas),
        "large": sum(x >= hi for x in areas),
    }
    out = {f"n {size}": float(counts[size]) for size in SIZES}
    if not preds:
        return {**_zeros(), **{f"AP {s}": 0.0 if counts[s] else math.nan for s in SIZES}, **out}
    stats = _cocoeval_stats(instances, preds, iou_type, eval_ids, (lo, hi))
    if any(float(stats[k]) < 0 for k in range(len(METRICS))):
        # COCOeval's -1: no category had both ground truth and a place in the evaluation.
        raise ValueError(
            f"{gt_name}: COCOeval found no ground truth for the evaluated categories "
            f"(predicted ids {sorted({p['category_id'] for p in preds})}); AP is undefined"
        )
    # Rounded so that a perfect score reads 100.0, not 99.99999999999997 (float sums in COCOeval).
    out |= {m: round(float(stats[k]) * 100.0, 6) for k, m in enumerate(METRICS)}
    for k, size in enumerate(SIZES):
        value = float(stats[3 + k])
        out[f"AP {size}"] = round(value * 100.0, 6) if value >= 0 and counts[size] else math.nan
    return out


def _prepare(
    gt: GroundTruth, predictions: Predictions, iou_type: str, image_ids: Iterable[int] | None
) -> tuple[dict, list[dict], list[int], list[dict], str]:
    """Load and check what COCOeval is given: (instances, the predictions on the evaluated
    images, those images' ids, their GT annotations, the GT's name for errors). Every input
    error of :func:`evaluate` is raised here."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got '{iou_type}'")
    instances, gt_name = _load_gt(gt)
    preds, pred_name = _load_predictions(predictions)
    images = {img["id"]: img for img in instances["images"]}
    preds, eval_ids = _restrict_to_images(preds, pred_name, images, gt_name, image_ids)
    keep = set(eval_ids)
    gt_anns = [a for a in instances["annotations"] if a["image_id"] in keep]
    if not gt_anns:
        raise ValueError(
            f"{gt_name}: no ground-truth annotations on the evaluated images; AP is undefined"
        )
    if iou_type == "segm":
        _prepare_mask_predictions(preds, pred_name, images, gt_anns, gt_name)
    if preds:
        categories = instances.get("categories", [])
        if len(categories) == 1:
            # One class: a json that numbers it 0 must still match predictions saying 1.
            for p in preds:
                p["category_id"] = categories[0]["id"]
        else:
            _check_categories(preds, pred_name, gt_anns, categories, gt_name)
        _check_gt_boxes(gt_anns, gt_name)
    return instances, preds, eval_ids, gt_anns, gt_name


def _restrict_to_images(
    preds: list[dict],
    pred_name: str,
    images: dict[int, dict],
    gt_name: str,
    image_ids: Iterable[int] | None,
) -> tuple[list[dict], list[int]]:
    """The predictions on the evaluated images and those images' ids (all GT images when
    ``image_ids`` is None); ValueError for predicted or requested ids the GT does not have."""
    unknown = sorted({p["image_id"] for p in preds} - images.keys(), key=str)
    if unknown:
        raise ValueError(
            f"{pred_name}: {len(unknown)} predicted image ids are not in the ground truth {gt_name} "
            f"(e.g. {unknown[:5]}); were the predictions made on another split?"
        )
    if image_ids is None:
        return preds, list(images)
    eval_ids = list(dict.fromkeys(image_ids))
    missing = [i for i in eval_ids if i not in images]
    if missing:
        raise ValueError(f"image_ids not in the ground truth {gt_name}: {missing[:5]}")
    keep = set(eval_ids)
    return [p for p in preds if p["image_id"] in keep], eval_ids


def _prepare_mask_predictions(
    preds: list[dict], pred_name: str, images: dict[int, dict], gt_anns: list[dict], gt_name: str
) -> None:
    """For mask AP: check GT and predictions carry segmentations of the image's size, and drop
    the predictions' ``bbox`` in place so ``loadRes`` derives area and box from the mask."""
    if not all("segmentation" in a for a in gt_anns):
        raise ValueError(f"{gt_name}: ground truth lacks 'segmentation'; mask AP needs GT masks")
    for i, p in enumerate(preds):
        seg = p.get("segmentation")
        if not isinstance(seg, (dict, list)) or not seg:
            raise ValueError(f"{pred_name}: [{i}].segmentation is missing; mask AP needs masks")
        img = images[p["image_id"]]
        if isinstance(seg, dict) and list(seg.get("size", [])) != [img["height"], img["width"]]:
            raise ValueError(
                f"{pred_name}: [{i}].segmentation size {seg.get('size')} differs from image "
                f"{p['image_id']} ({img['height']}x{img['width']} HxW)"
            )
        p.pop("bbox", None)  # loadRes then derives area and box from the mask


def _check_gt_boxes(gt_anns: list[dict], gt_name: str) -> None:
    """ValueError for a GT box with a negative size (a sign of xyxy written as xywh)."""
    for a in gt_anns:
        if "bbox" in a and (a["bbox"][2] < 0 or a["bbox"][3] < 0):
            raise ValueError(
                f"{gt_name}: annotation {a.get('id')} (image {a['image_id']}) has a negative box "
                f"size {a['bbox']} (COCO bbox is [x, y, width, height])"
            )


def _cocoeval(
    instances: dict,
    preds: list[dict],
    iou_type: str,
    eval_ids: list[int],
    area_rng: dict[str, list[float]] | None = None,
) -> COCOeval:
    """pycocotools' COCOeval over ``eval_ids``, evaluated and accumulated (its printing
    silenced). ``area_rng`` (label -> [lo, hi] px^2, closed at both ends) replaces COCO's four
    object-size ranges, labelled 'all', 'small', 'medium', 'large' for its summary.
    ``ev.eval["precision"]`` is then (T IoU thresholds, R=101 recall points, K categories,
    A area ranges, M max detections), -1 where undefined."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = instances
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(preds)
        ev = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        ev.params.imgIds = sorted(eval_ids, key=str)
        if area_rng is not None:
            ev.params.areaRng = [list(r) for r in area_rng.values()]
            ev.params.areaRngLbl = list(area_rng)
        ev.evaluate()
        ev.accumulate()
    return ev


def _cocoeval_stats(
    instances: dict,
    preds: list[dict],
    iou_type: str,
    eval_ids: list[int],
    area_limits: tuple[float, float] | None = None,
):
    """COCOeval's (12,) summary ``stats`` array over ``eval_ids`` (AP, AP50, AP75 first, then
    AP small, medium, large; -1 where undefined). ``area_limits`` (px^2) replace COCO's 32^2
    and 96^2 between small, medium and large."""
    area_rng = None
    if area_limits is not None:
        lo, hi = area_limits
        area_rng = {"all": [0, 1e10], "small": [0, lo], "medium": [lo, hi], "large": [hi, 1e10]}
    ev = _cocoeval(instances, preds, iou_type, eval_ids, area_rng)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.summarize()
    return ev.stats


def _check_categories(
    preds: list[dict], pred_name: str, gt_anns: list[dict], categories: list[dict], gt_name: str
) -> None:
    """ValueError naming the ids when the predictions' categories cannot match the ground truth
    (COCOeval would silently score such a mismatch as AP 0)."""
    known = {c["id"] for c in categories}
    predicted = {p.get("category_id") for p in preds}
    unknown = sorted(predicted - known, key=str)
    if unknown:
        raise ValueError(
            f"{pred_name}: category ids {unknown} are not categories of {gt_name} "
            f"(it has {sorted(known, key=str)})"
        )
    annotated = {a["category_id"] for a in gt_anns}
    if not predicted & annotated:
        raise ValueError(
            f"{pred_name}: predictions use category ids {sorted(predicted, key=str)} but the "
            f"ground truth of {gt_name} annotates only {sorted(annotated, key=str)}"
        )


def _median_image_area(instances: dict, image_ids: Iterable[int] | None = None) -> float:
    """The median width x height (px^2) of these images (all of ``instances`` when None)."""
    keep = None if image_ids is None else set(image_ids)
    areas = [
        img["width"] * img["height"]
        for img in instances["images"]
        if keep is None or img["id"] in keep
    ]
    if not areas:
        raise ValueError("no image to take the size limits from")
    return float(sorted(areas)[len(areas) // 2])


def size_limits(instances: dict, image_ids: Iterable[int] | None = None) -> tuple[float, float]:
    """The small/medium and medium/large limits in px^2 for these images: :data:`SIZE_LIMITS`
    times their median image area (the study's sets have one image size each)."""
    median = _median_image_area(instances, image_ids)
    return SIZE_LIMITS[0] * median, SIZE_LIMITS[1] * median


def evaluate_by_size(
    gt: GroundTruth,
    predictions: Predictions,
    iou_type: str = "bbox",
    image_ids: Iterable[int] | None = None,
) -> dict[str, float]:
    """COCO AP (percent) per object size: ``{"AP small", "AP medium", "AP large"}``, the
    limits at COCO's shares of the image (:data:`SIZE_LIMITS`, :func:`size_limits`), and the
    ground-truth objects of each size (``"n small"``, ...). A size without ground truth is NaN.

    COCOeval sorts a GT object by its annotation ``area`` (mask pixels here, as in COCO) and
    ignores detections of another size that match nothing; arguments and errors as
    :func:`evaluate`.
    """
    scores = _evaluate_all(gt, predictions, iou_type, image_ids)
    return {k: scores[k] for k in (*SIZE_METRICS, *(f"n {s}" for s in SIZES))}


def ap_by_size_bins(
    gt: GroundTruth,
    predictions: Predictions,
    edges: Sequence[float] = SIZE_BIN_EDGES,
    iou_type: str = "bbox",
    image_ids: Iterable[int] | None = None,
) -> list[dict[str, float]]:
    """COCO AP, AP50, AP75 (percent) per bin of ground-truth **box** area, from one COCOeval run
    with its area ranges set to the bins.

    edges: (B + 1,) increasing shares of the image area, e.g. :data:`SIZE_BIN_EDGES`; bin b
           holds the objects whose box ``w * h`` is in ``[edges[b], edges[b + 1])`` times the
           median image area of the evaluated images (as :func:`size_limits`); the last bin is
           closed, ``[edges[-2], edges[-1]]``.
    Returns B dicts ``{"share lo", "share hi", "n", "AP", "AP50", "AP75"}``, in bin order:
    the bin's edges (shares), its GT objects on the evaluated images, and its AP. A bin without
    ground truth gives NaN AP; no predictions give 0 in every bin with ground truth.

    The bins are by the GT box area, not the annotation's ``area`` (mask pixels here) that
    :func:`evaluate_by_size` sorts by: a copy of the GT takes ``area = w * h`` from its box.
    As in COCOeval, a detection that matches no GT object counts only in the bin of its own
    area (its box's for ``bbox``, its mask's for ``segm``). Arguments and errors as
    :func:`evaluate`; ValueError for fewer than two edges or edges that do not increase.
    """
    edges = [float(e) for e in edges]
    if len(edges) < 2 or edges[0] < 0 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"edges must be >= 2 increasing shares from >= 0, got {edges}")
    instances, preds, eval_ids, gt_anns, gt_name = _prepare(gt, predictions, iou_type, image_ids)
    for a in gt_anns:  # instances is a private copy: COCOeval reads the box area as "area"
        a["area"] = float(a["bbox"][2] * a["bbox"][3])
    image_area = _median_image_area(instances, eval_ids)
    px = [e * image_area for e in edges]
    # COCOeval's ranges are closed at both ends: every bin but the last ends just below its
    # upper edge, so an object on an edge falls in one bin
    area_rng = [[lo, float(np.nextafter(hi, 0))] for lo, hi in itertools.pairwise(px)]
    area_rng[-1][1] = px[-1]
    rows = [
        {
            "share lo": lo,
            "share hi": hi,
            "n": sum(r_lo <= a["area"] <= r_hi for a in gt_anns),
        }
        for (lo, hi), (r_lo, r_hi) in zip(itertools.pairwise(edges), area_rng, strict=True)
    ]
    if not preds:
        return [{**r, **dict.fromkeys(METRICS, 0.0 if r["n"] else math.nan)} for r in rows]
    ev = _cocoeval(
        instances, preds, iou_type, eval_ids, {f"bin {k}": r for k, r in enumerate(area_rng)}
    )
    precision = ev.eval["precision"][..., -1]  # (T, R, K, A) at 100 detections per image
    thresholds = {"AP": None, "AP50": 0.5, "AP75": 0.75}
    for k, row in enumerate(rows):
        for metric, thr in thresholds.items():
            p = precision[:, :, :, k]
            if thr is not None:
                p = p[np.isclose(ev.params.iouThrs, thr)]
            p = p[p > -1]
            if not row["n"]:
                row[metric] = math.nan
            elif not p.size:
                # as _evaluate_all: no category had both ground truth and a place in the run
                raise ValueError(
                    f"{gt_name}: COCOeval found no ground truth for the evaluated categories "
                    f"(predicted ids {sorted({d['category_id'] for d in preds})}); AP is undefined"
                )
            else:
                row[metric] = round(float(p.mean()) * 100.0, 6)
    return rows


def evaluate_tasks(
    gt: GroundTruth,
    predictions: Predictions,
    image_ids: Iterable[int] | None = None,
    tasks: Iterable[str] = ("box", "mask"),
) -> dict[str, dict[str, float]]:
    """``{"box": {AP, AP50, AP75, AP small, AP medium, AP large}, "mask": {...}}`` in percent
    (sizes as :func:`evaluate_by_size`; one COCOeval run per task).

    A task that cannot be scored (mask AP when the GT or the predictions carry no masks) gets NaN
    values rather than an error, so box-only datasets and teachers still fill their table rows.
    """
    instances, _ = _load_gt(gt)
    preds, _ = _load_predictions(predictions)
    image_ids = None if image_ids is None else list(image_ids)
    out = {}
    for task in tasks:
        iou_type = TASK_IOU_TYPE[task]
        if iou_type == "segm":
            keep = None if image_ids is None else set(image_ids)
            gt_anns = [a for a in instances["annotations"] if keep is None or a["image_id"] in keep]
            pr = [p for p in preds if keep is None or p["image_id"] in keep]
            if (
                not gt_anns
                or not all("segmentation" in a for a in gt_anns)
                or not all(p.get("segmentation") for p in pr)
            ):
                out[task] = dict.fromkeys((*METRICS, *SIZE_METRICS), math.nan)
                continue
        scores = _evaluate_all(instances, preds, iou_type, image_ids)
        out[task] = {k: scores[k] for k in (*METRICS, *SIZE_METRICS)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m afss_utils.evaluate",
        description="COCO AP/AP50/AP75 (percent) of a results json against an instances json.",
    )
    parser.add_argument("--gt", required=True, type=Path, help="COCO instances json (ground truth)")
    parser.add_argument("--pred", required=True, type=Path, help="COCO results json (predictions)")
    parser.add_argument("--iou-type", default="bbox", choices=IOU_TYPES)
    args = parser.parse_args(argv)
    try:
        result: dict[str, Any] = evaluate(args.gt, args.pred, args.iou_type)
        if not _load_predictions(args.pred)[0]:  # a legitimate result, but rarely the intended one
            sys.stderr.write(f"warning: {args.pred} holds no predictions; every AP is 0\n")
    except (ValueError, OSError) as exc:  # CocoFormatError is a ValueError
        parser.exit(2, f"error: {exc}\n")
    json.dump({k: round(v, 4) for k, v in result.items()}, sys.stdout)
    sys.stdout.write("\n")
    return 0


def score_rows(
    gt: GroundTruth,
    predictions: Predictions,
    image_ids: Iterable[int] | None = None,
    tasks: Iterable[str] = ("box", "mask"),
) -> list[dict]:
    """Long-format table rows ``{"task", "AP", "AP50", "AP75", "AP small", "AP medium", "AP
    large"}``, one per task (object sizes as :func:`evaluate_by_size`).

    The caller adds the row's identity (dataset, method, model); see :mod:`afss_utils.tables`.
    """
    return [{"task": t, **m} for t, m in evaluate_tasks(gt, predictions, image_ids, tasks).items()]


def _top_per_image(preds: list[dict]) -> dict[int, dict]:
    """image_id -> its top-scoring result (the first of equal scores)."""
    return {i: recs[0] for i, recs in coco.results_by_image(preds).items()}


def label_quality(gt: GroundTruth, predictions: Predictions) -> list[dict]:
    """Per GT image: how good its best prediction is, for analysing pseudo-labels.

    Returns ``{"image_id", "score", "box_iou", "mask_iou"}`` per image of ``gt``; an image
    without prediction has score NaN and IoUs 0 (a missed object), ``mask_iou`` is NaN when the
    GT or the prediction has no mask. Uses the GT's first annotation (single-instance datasets).
    Never feeds training: ground truth of a training split is only for this analysis.
    """
    instances, _ = _load_gt(gt)
    preds, _ = _load_predictions(predictions)
    best = _top_per_image(preds)
    first: dict[int, dict] = {}
    for a in instances["annotations"]:
        first.setdefault(a["image_id"], a)
    rows = []
    for img in instances["images"]:
        ann, pred = first.get(img["id"]), best.get(img["id"])
        if ann is None:
            continue
        row = {"image_id": img["id"], "score": math.nan, "box_iou": 0.0, "mask_iou": math.nan}
        if pred is not None:
            row["score"] = float(pred["score"])
            row["box_iou"] = float(
                coco.box_iou(coco.xywh_to_xyxy(ann["bbox"]), coco.xywh_to_xyxy(pred["bbox"]))[0, 0]
            )
        if ann.get("segmentation"):
            h, w = img["height"], img["width"]
            if pred is None:
                row["mask_iou"] = 0.0
            elif pred.get("segmentation"):
                row["mask_iou"] = coco.mask_iou(
                    coco.rle_to_mask(ann["segmentation"], h, w),
                    coco.rle_to_mask(pred["segmentation"], h, w),
                )
        rows.append(row)
    return rows


EARTH_CONFUSION_COLUMNS = ("image_id", "file_name", "score", "iou_gt", "iou_earth")


def _box_area(box: np.ndarray) -> float:
    """Area of a (1, 4) xyxy box; 0 for an empty one (x2 < x1 or y2 < y1)."""
    return float(np.prod(np.clip(box[0, 2:] - box[0, :2], 0, None)))


def earth_confusions(
    gt_instances: dict, predictions: list[dict], iou_miss: float = 0.3
) -> pd.DataFrame:
    """The images on which the top-scoring prediction boxes the Earth instead of the spacecraft.

    gt_instances: COCO instances dict; an image counts only when its ``images[]`` entry carries
                  an ``earth_box`` (the Earth's visible part, xywh pixels) that is not null
                  (synthetic sets; a missing key means unknown, as in the real datasets)
    predictions:  COCO results records (``image_id``, ``bbox`` xywh pixels, ``score``); per
                  image only the top-scoring one is judged, images absent from the GT are
                  ignored, and an image without prediction is a miss, not a confusion
    iou_miss:     the top box misses the spacecraft when its IoU with every GT box is below this

    A confusion also needs at least half of the predicted box's area inside the Earth box and
    a larger IoU with the Earth box than with the ground truth. Returns a DataFrame with one row
    per confusion, in the GT's image order, and the columns ``image_id``, ``file_name``,
    ``score``, ``iou_gt`` (the best IoU with a GT box; 0 without GT) and ``iou_earth``; no row
    (but the columns) when there is none.
    """
    best = _top_per_image(predictions)
    gt_boxes: dict[int, list] = {}
    for a in gt_instances["annotations"]:
        gt_boxes.setdefault(a["image_id"], []).append(a["bbox"])
    rows = []
    for img in gt_instances["images"]:
        earth, pred = img.get("earth_box"), best.get(img["id"])
        if earth is None or pred is None:
            continue
        box, earth = coco.xywh_to_xyxy(pred["bbox"]), coco.xywh_to_xyxy(earth)  # (1, 4) each
        gts = coco.xywh_to_xyxy(gt_boxes.get(img["id"], []))  # (G, 4)
        iou_gt = float(coco.box_iou(box, gts).max()) if len(gts) else 0.0
        iou_earth = float(coco.box_iou(box, earth)[0, 0])
        on_earth = np.concatenate(
            [np.maximum(box[:, :2], earth[:, :2]), np.minimum(box[:, 2:], earth[:, 2:])], axis=1
        )
        area = _box_area(box)
        if (
            iou_gt < iou_miss
            and area > 0
            and _box_area(on_earth) >= 0.5 * area
            and iou_earth > iou_gt
        ):
            rows.append(
                {
                    "image_id": img["id"],
                    "file_name": img["file_name"],
                    "score": float(pred["score"]),
                    "iou_gt": iou_gt,
                    "iou_earth": iou_earth,
                }
            )
    return pd.DataFrame(rows, columns=list(EARTH_CONFUSION_COLUMNS))


if __name__ == "__main__":
    sys.exit(main())
