"""Type classification with a center-heatmap detector: the ResNet18 report's metrics and its
staged grid search (``reference/resnet18-center-detector-report.md``, Sections 2.5 and 3).

The model is :class:`afss_utils.students.centernet.CenterNetStudent`; here are what the report
measures of it (type accuracy, per type, the center cell, class-agnostic box AP) and how it
chose its hyper-parameters (three stages over a **validation** split, never the test split).
"""

from __future__ import annotations

import itertools
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils import coco
from afss_utils.datasets import Dataset
from afss_utils.students.centernet import STRIDE, box_cells

# ---------------------------------------------------------------------------- metrics


def classification_metrics(gt: dict, predictions: list[dict], imgsz: int) -> dict:
    """Type-classification and center metrics of top-1 ``predictions`` against ``gt`` (COCO
    instances with several categories, one object per image; the report's setting).

    Returns ``accuracy`` (predicted category of the top detection == GT category, over all GT
    images; an image without a detection counts wrong), ``per_class`` {name: accuracy},
    ``cell_accuracy`` (top detection's cell == the GT box center's cell on the letterboxed
    ``imgsz`` canvas, exact cell as the report, on its stride-32 grid whatever the model's
    output stride), and ``confusion`` (C, C) counts [gt, pred] in
    category-id order with ``labels`` the category names. All in [0, 1]; no images: zeros."""
    grid = imgsz // STRIDE
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    images = {img["id"]: img for img in gt["images"]}
    first_ann: dict[int, dict] = {}
    for a in gt["annotations"]:
        first_ann.setdefault(a["image_id"], a)
    best: dict[int, dict] = {}
    for p in predictions:
        if p["image_id"] not in best or p["score"] > best[p["image_id"]]["score"]:
            best[p["image_id"]] = p
    conf = np.zeros((len(cats), len(cats)), dtype=int)
    correct, cell_ok, n = 0, 0, 0
    per_class_n = np.zeros(len(cats), int)
    per_class_ok = np.zeros(len(cats), int)
    for image_id, a in first_ann.items():
        n += 1
        g = index[a["category_id"]]
        per_class_n[g] += 1
        p = best.get(image_id)
        if p is None:
            continue
        k = index.get(p["category_id"])
        if k is not None:
            conf[g, k] += 1
            if k == g:
                correct += 1
                per_class_ok[g] += 1
        img = images[image_id]
        scale = imgsz / max(img["width"], img["height"])
        gcell = box_cells(coco.xywh_to_xyxy(np.array([a["bbox"]])) * scale, imgsz, grid)[0]
        pcell = p.get("cell")
        if pcell is None:
            pb = coco.xywh_to_xyxy(np.array([p["bbox"]])) * scale
            pcell = box_cells(pb, imgsz, grid)[0]
        cell_ok += int(tuple(pcell) == tuple(gcell))
    return {
        "accuracy": correct / n if n else 0.0,
        "cell_accuracy": cell_ok / n if n else 0.0,
        "per_class": {
            c["name"]: (per_class_ok[i] / per_class_n[i] if per_class_n[i] else float("nan"))
            for i, c in enumerate(cats)
        },
        "confusion": conf,
        "labels": [c["name"] for c in cats],
        "num_images": n,
    }


# ---------------------------------------------------------------------------- data at a fixed budget


def first_per_domain(instances: dict, per_domain: int) -> dict:
    """The first ``per_domain`` images of each domain (json order) and their annotations: the
    nested training subsets of the accuracy-vs-images curve. A balanced type split stays
    balanced (its types take turns by index, :func:`afss_utils.synthetic.type_split`)."""
    seen: dict[str, int] = {}
    keep = set()
    for img in instances["images"]:
        d = img.get("domain", "")
        seen[d] = seen.get(d, 0) + 1
        if seen[d] <= per_domain:
            keep.add(img["id"])
    return {
        **instances,
        "images": [i for i in instances["images"] if i["id"] in keep],
        "annotations": [a for a in instances["annotations"] if a["image_id"] in keep],
    }


def train_for_steps(
    student, instances: dict, image_dir, out_dir, steps: int, warmup_steps: int
) -> tuple[Any, int]:
    """Train ``student`` for ``steps`` optimiser steps whatever the number of images: whole
    epochs, ``round(steps / steps_per_epoch)`` of them (at least one), with a warm-up of
    ``warmup_steps`` steps (a warm-up in epochs would last the whole run on a large set).
    Returns (the trained student, the steps taken: equal to ``steps`` when the set's steps per
    epoch divide it)."""
    per_epoch = student.steps_per_epoch(len(instances["images"]))
    epochs = max(1, round(steps / per_epoch))
    student.warmup_epochs = warmup_steps / per_epoch
    return student.train(instances, image_dir, out_dir, epochs=epochs), epochs * per_epoch


# ---------------------------------------------------------------------------- grid search


def staged_grid(grid: dict) -> list[list[str]]:
    """The report's stages (each searched with the best values of the previous ones; the
    others at their middle value): (lr, weight_decay), (sigma, pos_weight), (pos_weight,
    box_weight). Only keys present in ``grid`` are searched; a stage with none is skipped."""
    stages = [["lr", "weight_decay"], ["sigma", "pos_weight"], ["pos_weight", "box_weight"]]
    return [[k for k in s if k in grid] for s in stages if any(k in grid for k in s)]


def grid_search(
    make_student,
    train: tuple[dict, str | os.PathLike],
    val: Dataset,
    grid: dict[str, list],
    out_dir: str | os.PathLike,
    max_trials: int | None = None,
    epochs: int | None = None,
    cluster: Any = None,
) -> tuple[dict, list[dict]]:
    """The report's staged grid search over a **validation** split.

    make_student(**hyper) -> a fresh :class:`CenterNetStudent`; train = (instances, image_dir);
    grid {key: values} over ``lr, weight_decay, sigma, pos_weight, box_weight``. Each trial
    trains, predicts ``val`` and is scored by validation box AP (ties: cell accuracy). Keys not
    yet searched sit at their middle value. Trials already run (same hyper-parameters) are not
    repeated. ``max_trials`` stops early. The trials of a stage are independent: they run as
    Ray tasks side by side (``cluster``: a :class:`afss_utils.cluster.ClusterConfig` or its
    params). Returns (best hyper-parameters, one row per trial).
    """
    from afss_utils.cluster import ClusterConfig, run_all

    unknown = set(grid) - {"lr", "weight_decay", "sigma", "pos_weight", "box_weight"}
    if unknown:
        raise KeyError(f"classification grid: unknown keys {sorted(unknown)}")
    config = cluster if isinstance(cluster, ClusterConfig) else ClusterConfig.from_params(cluster)
    best = {k: v[len(v) // 2] for k, v in grid.items() if v}
    rows: list[dict] = []
    done: dict[tuple, dict] = {}
    for s, keys in enumerate(staged_grid(grid), 1):
        stage = [
            {**best, **dict(zip(keys, v, strict=True))}
            for v in itertools.product(*(grid[k] for k in keys))
        ]
        new = list(
            {
                tuple(sorted(h.items())): h for h in stage if tuple(sorted(h.items())) not in done
            }.values()
        )
        if max_trials is not None:
            new = new[: max(0, max_trials - len(rows))]
        calls = {
            len(rows) + i + 1: partial(
                _trial,
                make_student,
                hyper,
                train,
                val,
                Path(out_dir) / f"trial{len(rows) + i + 1:02d}",
                epochs,
            )
            for i, hyper in enumerate(new)
        }
        for trial, (hyper, metrics) in run_all(calls, config, f"grid stage {s}").items():
            row = {"trial": trial, "stage": s, **hyper, **metrics}
            rows.append(row)
            done[tuple(sorted(hyper.items()))] = row
        stage_rows = [done[k] for k in (tuple(sorted(h.items())) for h in stage) if k in done]
        if stage_rows:
            top = max(stage_rows, key=lambda r: (r["val_AP"], r["val_cell_accuracy"]))
            best = {k: top[k] for k in best}
    return best, rows


def _trial(make_student, hyper: dict, train: tuple, val: Dataset, out_dir: Path, epochs):
    """One grid-search trial (a training task): train, predict ``val``, score it.
    Returns (hyper, {val_AP, val_AP50, val_accuracy, val_cell_accuracy})."""
    student = make_student(**hyper)
    student.train(train[0], train[1], out_dir, epochs=epochs)
    preds = student.predict(val)
    ap = agnostic_box_ap(val.instances, preds)
    m = classification_metrics(val.instances, preds, student.imgsz)
    return hyper, {
        "val_AP": ap["AP"],
        "val_AP50": ap["AP50"],
        "val_accuracy": m["accuracy"],
        "val_cell_accuracy": m["cell_accuracy"],
    }


def agnostic_box_ap(gt: dict, predictions: list[dict]) -> dict[str, float]:
    """Box AP/AP50/AP75 (percent) ignoring classes: localisation alone, as for the detectors."""
    from afss_utils.evaluate import evaluate

    one = dict(coco.CATEGORIES[0])
    gt1 = {
        **gt,
        "annotations": [{**a, "category_id": one["id"]} for a in gt["annotations"]],
        "categories": [one],
    }
    return evaluate(gt1, [{**p, "category_id": one["id"]} for p in predictions])
