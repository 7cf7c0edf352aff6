"""Label distillation (paper III-C, IV-F): confidence filtering, COCO -> ultralytics export, and
the train-relabel (TR) loop that trains fresh students on their predecessors' labels.

Data flow, one file format per arrow::

    teacher results (COCO results json)
        -> confidence_filter (eq. 6, keep score >= theta)
        -> pseudo_instances (COCO instances json over the kept training images; never GT)
        -> student.train (see afss_utils.students; YOLO students go through export_yolo)
        -> student.predict(train images) -> relabel -> the next round's pseudo-labels

Ground truth enters only the Oracle row (trained on GT instances directly) and evaluation.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from afss_utils import coco, obb
from afss_utils.datasets import Dataset

# ---------------------------------------------------------------------------- confidence filter


def confidence_filter(results: list[dict], theta: float | str = "mean") -> tuple[list[dict], float]:
    """Keep the predictions with ``score >= theta`` (eq. 6).

    theta: a number in [0, 1], or ``'mean'`` for the mean score of ``results`` (the paper picks
    theta per dataset from the mean confidence of its predictions).
    Returns ``(kept, theta_used)``; ``theta_used`` is NaN for ``'mean'`` over no predictions.
    """
    if isinstance(theta, str):
        if theta != "mean":
            raise ValueError(f"confidence threshold must be a number or 'mean', got {theta!r}")
        if not results:
            return [], math.nan
        theta_used = float(np.mean([r["score"] for r in results]))
    else:
        theta_used = float(theta)
        if not 0.0 <= theta_used <= 1.0:
            raise ValueError(f"confidence threshold must lie in [0, 1], got {theta_used}")
    # A tiny tolerance so that the mean of identical scores keeps them all despite rounding.
    kept = [r for r in results if r["score"] >= theta_used - 1e-9]
    return kept, theta_used


def confidence_filter_by_dataset(
    results: list[dict], theta: float | str, datasets: Mapping[str, Iterable[int]]
) -> tuple[list[dict], dict[str, float]]:
    """Eq. 6 with theta chosen for each dataset from its own labels, as the paper does (0.6 for
    SPEED+, 0.5 for the others), also when several datasets' training images are pooled.

    datasets: name -> the image ids of that dataset; every result must belong to one of them.
    Returns ``(kept, {name: theta_used})``, kept in the order of ``results``.
    """
    owner = {int(i): name for name, ids in datasets.items() for i in ids}
    stray = {r["image_id"] for r in results} - owner.keys()
    if stray:
        raise ValueError(
            f"{len(stray)} labelled image ids belong to none of the datasets "
            f"{', '.join(datasets)} (e.g. {sorted(stray)[:5]})"
        )
    keep_ids: set[int] = set()
    thetas: dict[str, float] = {}
    for name in datasets:
        part = [r for r in results if owner[r["image_id"]] == name]
        kept, thetas[name] = confidence_filter(part, theta)
        keep_ids.update(id(r) for r in kept)
    return [r for r in results if id(r) in keep_ids], thetas


@dataclass
class FilterReport:
    """How much of a pseudo-labelled training set a confidence filter kept."""

    theta: float
    predictions_before: int
    predictions_after: int
    images_before: int
    images_after: int

    def __str__(self) -> str:
        return (
            f"theta={self.theta:.3f}: {self.images_after}/{self.images_before} images, "
            f"{self.predictions_after}/{self.predictions_before} predictions kept"
        )


def images_with_labels(results: list[dict]) -> int:
    """Number of distinct images that carry at least one prediction."""
    return len({r["image_id"] for r in results})


def filter_report(before: list[dict], after: list[dict], theta: float) -> FilterReport:
    return FilterReport(
        theta, len(before), len(after), images_with_labels(before), images_with_labels(after)
    )


# ---------------------------------------------------------------------------- pseudo training set


def top_k_per_image(results: list[dict], k: int | None = 1) -> list[dict]:
    """The ``k`` highest-scoring results of each image (all when k is None), best first."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    out = []
    for recs in by_image.values():
        recs = sorted(recs, key=lambda r: -r["score"])
        out.extend(recs if k is None else recs[:k])
    return out


def pseudo_instances(results: list[dict], dataset: Dataset, top_k: int | None = 1) -> dict:
    """A COCO instances training set made only from predictions.

    Each image of ``dataset`` with at least one prediction gets its ``top_k`` predictions as
    annotations (``bbox`` xywh px, and the RLE ``segmentation`` when the prediction has one);
    images with none are dropped, so ``len(out["images"])`` is the training-set size. The
    dataset's own annotations (ground truth) are never read. ``info`` records the counts.
    """
    known = set(dataset.image_ids)
    unknown = {r["image_id"] for r in results} - known
    if unknown:
        raise ValueError(
            f"{len(unknown)} predicted image ids are not in dataset '{dataset.name}' "
            f"(e.g. {sorted(unknown)[:5]})"
        )
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in top_k_per_image(results, top_k):
        by_image[r["image_id"]].append(r)
    images, annotations = [], []
    for image_id in dataset.image_ids:
        if image_id not in by_image:
            continue
        info = dict(dataset.image_info(image_id))
        images.append(info)
        for r in by_image[image_id]:
            annotations.append(
                _annotation_from_result(len(annotations) + 1, r, info["height"], info["width"])
            )
    info = {"source": "pseudo-labels", "images_total": len(dataset), "images_kept": len(images)}
    return coco.make_instances(images, annotations, info)


def _annotation_from_result(ann_id: int, r: dict, height: int, width: int) -> dict:
    """A training annotation from one result; polygon masks become RLE (the image's size)."""
    x, y, w, h = (float(v) for v in r["bbox"])
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": int(r["image_id"]),
        "category_id": coco.CATEGORY_ID,
        "iscrowd": 0,
        "bbox": [x, y, w, h],
        "area": w * h,
        "score": float(r["score"]),
    }
    if "segmentation" in r:
        mask = coco.rle_to_mask(r["segmentation"], height, width)
        is_rle = isinstance(r["segmentation"], dict)
        ann["segmentation"] = r["segmentation"] if is_rle else coco.mask_to_rle(mask)
        ann["area"] = float(mask.sum())
    return ann


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
    (:func:`afss_utils.obb.annotation_corners`); segment: ``0 x1 y1 x2 y2 ...`` normalised
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
        elif task == "obb":  # 0 x1 y1 ... x4 y4: the annotation's oriented box (afss_utils.obb)
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


# ---------------------------------------------------------------------------- relabel rounds


def relabel(student: Any, dataset: Dataset, top_k: int | None = 1) -> list[dict]:
    """The student's predictions on ``dataset`` (its training images), top ``top_k`` per image,
    as COCO results: the next round's pseudo-labels."""
    return top_k_per_image(student.predict(dataset), top_k)


BUDGETS = ("steps", "epochs")


def training_epochs(student: Any, n_images: int, budget: str = "steps") -> int:
    """Epochs that give ``student`` its budget on a training set of ``n_images``.

    ``'steps'``: ``ceil(student.steps / student.steps_per_epoch(n_images))``, so every row of
    Table III takes the same number of optimiser steps whatever the confidence filter kept;
    with a fixed epoch count, dropping images would also cut training short and confound the
    effect of filtering. ``'epochs'``: the student's configured ``epochs`` (the paper's recipe).
    """
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if n_images < 1:
        raise ValueError("no training image: nothing to budget")
    if budget == "epochs":
        return int(student.epochs)
    return max(1, math.ceil(student.steps / student.steps_per_epoch(n_images)))


@dataclass
class RoundRecord:
    """One trained student of a distillation run.

    round: 0 for the student trained on the given labels, k for the one trained on the labels of
    round k-1's student. ``theta`` is the threshold used per dataset (``{"all": t}`` without
    per-dataset groups; NaN when nothing was filtered). ``test_results`` are its COCO results
    on the test set (evaluate them with afss_utils.evaluate); ``train_labels`` the results it
    was trained from.
    """

    round: int
    theta: dict[str, float]
    train_images: int
    total_images: int
    epochs: int
    steps: int
    seconds: float
    threads: int
    init: str
    test_results: list[dict] = field(repr=False)
    train_labels: list[dict] = field(repr=False)

    def summary(self) -> dict:
        """The scalar fields (a row of relabel_rounds.csv)."""
        skip = ("theta", "test_results", "train_labels")
        return {k: v for k, v in vars(self).items() if k not in skip}


def train_on_results(
    student: Any,
    results: list[dict],
    train: Dataset,
    test: Dataset,
    out_dir: str | os.PathLike,
    theta: float | str | None = None,
    round_index: int = 0,
    val: Dataset | None = None,
    top_k: int | None = 1,
    budget: str = "steps",
    datasets: Mapping[str, Iterable[int]] | None = None,
) -> RoundRecord:
    """Filter ``results`` (if ``theta`` is given: per dataset when ``datasets`` maps names to
    image ids, else over all), train ``student`` on them for its ``budget`` (see
    :func:`training_epochs`), predict ``test``.

    Writes ``train_instances.json`` and ``test_predictions.json`` under ``out_dir``.
    """
    import torch

    out_dir = Path(out_dir)
    if theta is None:
        kept, thetas = results, {"all": math.nan}
    elif datasets is not None:
        kept, thetas = confidence_filter_by_dataset(results, theta, datasets)
    else:
        kept, t = confidence_filter(results, theta)
        thetas = {"all": t}
    instances = pseudo_instances(kept, train, top_k=top_k)
    n = len(instances["images"])
    if not n:
        raise ValueError(f"round {round_index}: no training image left after filtering ({thetas})")
    coco.save_json(instances, out_dir / "train_instances.json")
    val_pair = None if val is None else (val.instances, val.image_dir)
    epochs = training_epochs(student, n, budget)
    # recorded because a kernel that trains on fewer threads than the machine has is slow
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    student.train(instances, train.image_dir, out_dir / "student", val=val_pair, epochs=epochs)
    seconds = getattr(student, "train_seconds", None) or time.perf_counter() - t0
    test_results = student.predict(test)
    coco.save_json(test_results, out_dir / "test_predictions.json")
    return RoundRecord(
        round_index,
        thetas,
        n,
        len(train),
        epochs,
        epochs * student.steps_per_epoch(n),
        seconds,
        threads,
        getattr(student, "init", "scratch"),
        test_results,
        kept,
    )


def convergence_curve(
    student: Any, test: Dataset, datasets: Mapping[str, Iterable[int]]
) -> list[dict]:
    """Test box AP/AP50/AP75 per dataset at each checkpoint of ``student``'s last training
    (``student.checkpoints()``: ``(epochs, path)`` pairs; none for students without them).

    Rows ``{"epoch", "dataset", "task", "AP", "AP50", "AP75"}``. The student is left loaded with
    the weights it had. Shows whether more training would still change a comparison.
    """
    from afss_utils.evaluate import score_rows

    checkpoints = student.checkpoints() if hasattr(student, "checkpoints") else []
    if not checkpoints:
        return []
    final = student.weights
    rows = []
    try:
        for epoch, path in checkpoints:
            predictions = student.load(path).predict(test)
            for name, ids in datasets.items():
                for row in score_rows(test, predictions, ids, tasks=("box",)):
                    rows.append({"epoch": epoch, "dataset": name, **row})
    finally:
        student.load(final)
    return rows


def run_rounds(
    make_student: Callable[[], Any],
    pseudo_results: list[dict],
    train: Dataset,
    test: Dataset,
    out_dir: str | os.PathLike,
    rounds: int = 1,
    theta: float | str | None = "mean",
    val: Dataset | None = None,
    top_k: int | None = 1,
    budget: str = "steps",
    datasets: Mapping[str, Iterable[int]] | None = None,
) -> list[RoundRecord]:
    """The TR loop: a student on the filtered pseudo-labels, then ``rounds`` times: it relabels
    the training images, the relabels pass through the same confidence filter (theta from their
    own scores, per dataset), and a *fresh* student (``make_student()``, from scratch) trains on
    them. Without the filter every top box of the student, down to its 0.001 score floor, would
    become a hard label.

    Returns ``rounds + 1`` records, round 0 first; round k's files are under ``out_dir/round{k}``.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    out_dir = Path(out_dir)
    opts = {"val": val, "top_k": top_k, "budget": budget, "datasets": datasets}
    student = make_student()
    records = [
        train_on_results(student, pseudo_results, train, test, out_dir / "round0", theta, 0, **opts)
    ]
    for k in range(1, rounds + 1):
        labels = relabel(student, train, top_k)
        coco.save_json(labels, out_dir / f"round{k}" / "relabels.json")
        student = make_student()
        records.append(
            train_on_results(student, labels, train, test, out_dir / f"round{k}", theta, k, **opts)
        )
    return records
