"""The TTA ablation (paper Section IV-E): augmentation sets x fusion methods, scored by COCO AP.

Views are predicted by :func:`afss_utils.tta.predict_views` and fused by
:func:`afss_utils.pseudolabel.fuse_views`, the two functions the pseudo-labeller runs, so a cell of
Table II is the pseudo-label file made with that row's ``tta`` and fusion settings. The teacher
sees each distinct view of an image once, all of them in one batch (the paper's grid has 11
distinct views in 30 view slots of its 8 sets): every set takes its views from that batch, and
the fusion methods of a set share them. A teacher's batched predictions equal its one-by-one
ones (tests/test_teachers_vlm.py), so this changes the cost, not the labels. The cost of a cell is
its share of the batch (the batch's seconds per view times its number of views) plus its fusion
time, i.e. what labelling with that setting alone costs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

from afss_utils.datasets import Dataset
from afss_utils.fusion import FusionConfig
from afss_utils.progress import bar
from afss_utils.pseudolabel import fuse_views
from afss_utils.teachers.base import Teacher
from afss_utils.tta import parse_tta, predict_views

NO_FUSION = "none"  # the single-view row: the teacher's own top detection, nothing to fuse


@dataclass
class AblationRun:
    """Predictions and cost of one (augmentation set, fusion method) cell of the grid.

    results: COCO results list over the dataset; seconds: teacher + fusion seconds in total;
    views: number of views including the identity; augs: their names, as ``pseudolabel``'s
    header lists them.
    """

    setting: str
    method: str
    views: int
    results: list[dict]
    seconds: float = 0.0
    augs: tuple[str, ...] = ()


def tta_ablation(
    teacher: Teacher,
    dataset: Dataset,
    grid: Sequence[dict],
    methods: Sequence[str],
    fusion: FusionConfig | None = None,
    prompt: str = "spacecraft",
    progress: bool = True,
) -> list[AblationRun]:
    """Run the grid over ``dataset``.

    grid: params ``tta_grid`` entries ``{"name": str, "augs": [aug names]}`` (identity added);
    methods: fusion methods (``wbf``, ``nms``, ``soft_nms``); fusion: the other fusion settings.
    A row with no augmentation is scored once, with method ``"none"``.
    Returns one AblationRun per cell, in grid order.
    """
    fusion = fusion or FusionConfig()
    rows = []
    for row in grid:
        augs = parse_tta(row["augs"])
        rows.append((row["name"], augs, [NO_FUSION] if len(augs) == 1 else list(methods)))
    runs = {
        (name, m): AblationRun(name, m, len(augs), [], augs=tuple(a.name for a in augs))
        for name, augs, ms in rows
        for m in ms
    }
    configs = {m: dataclasses.replace(fusion, method=m) for m in methods}

    distinct = list({a.name: a for _, augs, _ in rows for a in augs}.values())
    for image_id in bar(dataset.image_ids, desc="TTA ablation", unit="img", progress=progress):
        image = dataset.load_image(image_id)
        t0 = time.perf_counter()
        views = predict_views(teacher, image, distinct, prompt)
        by_name = {a.name: v for a, v in zip(distinct, views, strict=True)}
        per_view = (time.perf_counter() - t0) / max(len(distinct), 1)
        for name, augs, row_methods in rows:
            views, view_cost = [by_name[a.name] for a in augs], per_view * len(augs)
            for method in row_methods:
                t0 = time.perf_counter()
                cfg = fusion if method == NO_FUSION else configs[method]
                pred = fuse_views(teacher, image, views, cfg)
                run = runs[name, method]
                run.results.extend(pred.to_results(image_id))
                run.seconds += view_cost + time.perf_counter() - t0
    return list(runs.values())
