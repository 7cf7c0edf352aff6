"""The TTA ablation (paper Section IV-E): augmentation sets x fusion methods, scored by COCO AP.

Every view of every image is predicted once, whichever grid rows use it; each row then fuses its
own subset of views with each fusion method. The cost of a row is charged as the seconds its views
took plus its fusion time, i.e. what labelling with that setting alone would cost.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from afss_utils.datasets import Dataset
from afss_utils.fusion import FusionConfig, fuse
from afss_utils.teachers.base import Teacher
from afss_utils.tta import parse_tta

NO_FUSION = "none"  # the single-view row: the teacher's own top detection, nothing to fuse


@dataclass
class AblationRun:
    """Predictions and cost of one (augmentation set, fusion method) cell of the grid.

    results: COCO results list over the dataset; seconds: teacher + fusion seconds in total;
    views: number of views including the identity.
    """

    setting: str
    method: str
    views: int
    results: list[dict]
    seconds: float = 0.0


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
    rows = [(row["name"], parse_tta(row["augs"])) for row in grid]
    all_augs = {aug.name: aug for _, augs in rows for aug in augs}
    runs: dict[tuple[str, str], AblationRun] = {}
    for name, augs in rows:
        for method in [NO_FUSION] if len(augs) == 1 else methods:
            runs[name, method] = AblationRun(name, method, len(augs), [])
    configs = {m: dataclasses.replace(fusion, method=m) for m in methods}

    for image_id in tqdm(dataset.image_ids, desc="TTA ablation", unit="img", disable=not progress):
        image = dataset.load_image(image_id)
        shape = image.shape[:2]
        views, cost = {}, {}
        for aug_name, aug in all_augs.items():
            t0 = time.perf_counter()
            views[aug_name] = aug.prediction_from_view(
                teacher.predict(aug.apply(image), prompt), shape
            )
            cost[aug_name] = time.perf_counter() - t0
        for name, augs in rows:
            view_cost = sum(cost[a.name] for a in augs)
            for method in [NO_FUSION] if len(augs) == 1 else methods:
                t0 = time.perf_counter()
                if method == NO_FUSION:
                    pred = views[augs[0].name].top_k(fusion.top_k)
                else:
                    pred = fuse(
                        [views[a.name] for a in augs],
                        shape,
                        configs[method],
                        _reprompt(teacher, image, fusion),
                    )
                run = runs[name, method]
                run.results.extend(pred.to_results(image_id))
                run.seconds += view_cost + time.perf_counter() - t0
    return list(runs.values())


def _reprompt(teacher: Teacher, image, fusion: FusionConfig):
    if fusion.mask_fusion != "reprompt":
        return None
    return lambda boxes: teacher.segment_boxes(image, boxes)  # type: ignore[attr-defined]
