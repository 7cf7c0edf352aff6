"""Label distillation (paper III-C, IV-F): confidence filtering, pseudo training sets, and
the train-relabel (TR) loop that trains fresh students on their predecessors' labels.

Data flow, one file format per arrow::

    teacher results (COCO results json)
        -> confidence_filter (eq. 6, keep score >= theta)
        -> pseudo_instances (COCO instances json over the kept training images; never GT)
        -> student.train (see afss_utils.students; YOLO students export via students.yolo_export)
        -> student.predict(train images) -> relabel -> the next round's pseudo-labels

Ground truth enters only the Oracle row (trained on GT instances directly) and evaluation.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils import coco
from afss_utils.datasets import Dataset

# ---------------------------------------------------------------------------- confidence filter


# The images left after the paper's filter (Sec. IV-F), of 500 training images per dataset: its
# thresholds (0.6 SPEED+, 0.5 the others) kept 79-94 %, where the mean of our classical teacher's
# scores keeps about half. ``keep <share>`` reproduces the share instead of the threshold.
PAPER_KEPT_IMAGES = {"SPARK-2024": 395, "SPEED+ sunlamp": 451, "SPEED+ lightbox": 417, "TANGO": 471}
PAPER_KEPT_SHARE = sum(PAPER_KEPT_IMAGES.values()) / (500 * len(PAPER_KEPT_IMAGES))  # 0.867


def parse_threshold(theta: float | str) -> tuple[str, float]:
    """``theta`` of eq. 6 as (rule, value): ``('value', t)`` for a number t in [0, 1],
    ``('mean', nan)`` for ``'mean'``, ``('keep', share)`` for ``'keep <share>'`` (0 < share <= 1).
    ValueError naming the accepted forms for anything else."""
    forms = "a number in [0, 1], 'mean' or 'keep <share>' (e.g. 'keep 0.85')"
    if isinstance(theta, str):
        words = theta.split()
        if words == ["mean"]:
            return "mean", math.nan
        if len(words) == 2 and words[0] == "keep":
            try:
                share = float(words[1])
            except ValueError:
                share = math.nan
            if 0.0 < share <= 1.0:
                return "keep", share
        raise ValueError(f"confidence threshold must be {forms}, got {theta!r}")
    if isinstance(theta, bool) or not isinstance(theta, int | float):
        raise ValueError(f"confidence threshold must be {forms}, got {theta!r}")
    if not 0.0 <= float(theta) <= 1.0:
        raise ValueError(f"confidence threshold must lie in [0, 1], got {theta}")
    return "value", float(theta)


def confidence_filter(results: list[dict], theta: float | str = "mean") -> tuple[list[dict], float]:
    """Keep the predictions with ``score >= theta`` (eq. 6).

    theta: a number in [0, 1]; ``'mean'`` for the mean score of ``results`` (how the paper says
    it picked its thresholds); or ``'keep <share>'`` for the score of the ceil(share * n)-th best
    of the n results, so that the best ``share`` of them pass (ties at theta pass too: at least
    that share is kept). The paper's thresholds kept ``PAPER_KEPT_SHARE`` of its images.
    Returns ``(kept, theta_used)``; ``theta_used`` is NaN for a rule over no predictions.
    """
    rule, value = parse_threshold(theta)
    scores = np.array([r["score"] for r in results], dtype=float)
    if rule == "value":
        theta_used = value
    elif not len(scores):
        return [], math.nan
    elif rule == "mean":
        theta_used = float(scores.mean())
    else:
        n_keep = math.ceil(value * len(scores) - 1e-9)  # 0.85 * 20 is 17.000000000000004
        theta_used = float(np.sort(scores)[::-1][max(n_keep, 1) - 1])
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


# ---------------------------------------------------------------------------- relabel rounds


def relabel(student: Any, dataset: Dataset, top_k: int | None = 1) -> list[dict]:
    """The student's predictions on ``dataset`` (its training images), top ``top_k`` per image,
    as COCO results: the next round's pseudo-labels."""
    return top_k_per_image(student.predict(dataset), top_k)


BUDGETS = ("steps", "epochs")


def optimiser_steps(train: Callable[[], Any]) -> int:
    """Run ``train()`` and count the optimiser steps it takes, in any torch optimiser of this
    process (counted by torch's global step hook, so it holds for every student)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    count = 0

    def hook(*_):
        nonlocal count
        count += 1

    handle = register_optimizer_step_post_hook(hook)
    try:
        train()
    finally:
        handle.remove()
    return count


def training_epochs(student: Any, n_images: int, budget: str = "steps") -> int:
    """Epochs that give ``student`` its budget on a training set of ``n_images``.

    ``'steps'``: ``ceil(student.steps / student.steps_per_epoch(n_images))``, so every row of
    Table III takes the same number of optimiser steps whatever the confidence filter kept;
    with a fixed epoch count, dropping images would also cut training short and confound the
    effect of filtering. ``'epochs'``: the student's configured ``epochs`` (the paper's recipe).
    ``steps_per_epoch`` is the steady-state count: ultralytics accumulates fewer batches per step
    during its warm-up when ``nbs > batch``, so such a run takes more steps than planned;
    :func:`train_round` records the steps actually taken.
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


def student_init(student: Any) -> str:
    """Where ``student``'s training starts, for the records (Table III's ``init``): 'scratch',
    or the file name of the checkpoint it loads first (YOLO's ``.pt`` model, EfficientDet's
    ``weights`` or ImageNet backbone, the centre student's backbone weights)."""
    source = getattr(student, "model_source", None)
    if source is not None:  # YOLO: a model yaml (built from scratch) or a checkpoint
        return Path(str(source)).name if str(source).endswith(".pt") else "scratch"
    for attr in ("weights", "backbone_weights"):
        weights = getattr(student, attr, None)
        if weights:
            return Path(str(weights)).name
    return "scratch"


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
    steps = optimiser_steps(
        lambda: student.train(
            instances, train.image_dir, out_dir / "student", val=val_pair, epochs=epochs
        )
    )
    seconds = getattr(student, "train_seconds", None) or time.perf_counter() - t0
    test_results = student.predict(test)
    coco.save_json(test_results, out_dir / "test_predictions.json")
    return RoundRecord(
        round_index,
        thetas,
        n,
        len(train),
        epochs,
        steps,
        seconds,
        threads,
        student_init(student),
        test_results,
        kept,
    )


def train_fresh(
    make_student: Callable[[], Any],
    results: list[dict],
    train: Dataset,
    test: Dataset,
    out_dir: str | os.PathLike,
    **options: Any,
) -> tuple[RoundRecord, Any]:
    """A fresh student (``make_student()``) through :func:`train_on_results`; returns the record
    and the trained student. The form a training task takes (:func:`afss_utils.cluster.submit`):
    everything it needs travels with it, and the student comes back holding its weights."""
    student = make_student()
    return train_on_results(student, results, train, test, out_dir, **options), student


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
