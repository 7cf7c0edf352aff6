"""Fuse per-view predictions into one (paper section III-B, eqs. 4-5), via ``ensemble_boxes``.

Boxes: ``weighted_boxes_fusion`` (WBF, eq. 4), NMS or Gaussian soft-NMS, on the union of all views'
detections mapped back to the original frame (see :mod:`afss_utils.tta`).

What ``ensemble_boxes`` does that we guard against (read from its source):
- boxes must be normalised xyxy in [0, 1]; pixel boxes are clipped to 1 and then dropped as
  zero-area, silently -> we normalise by (W, H), clip, and drop degenerate boxes ourselves;
- an unknown ``conf_type`` or mismatched lengths call ``exit()`` -> :class:`FusionConfig`
  validates every value, :func:`fuse` validates shapes, before any call;
- ``nms``/``soft_nms`` crash on no boxes at all -> all-empty input returns an empty Prediction;
- ``soft_nms`` returns the undecayed scores and ``nms`` JIT-compiles (numba) for seconds in every
  new process -> both run through its ``cpu_soft_nms_float`` (see :func:`_suppress`);
- a zero score divides by zero in WBF -> boxes with score <= 0 carry no weight and are dropped.

Fused scores. WBF ``avg`` first takes the cluster's mean score (the paper's eq. 4,
``sum(scores) / M`` over the cluster's ``M`` boxes), then ``ensemble_boxes`` rescales it by
``min(M, T) / T``, ``T`` being the number of views passed in (each view weight 1; see
``weighted_boxes_fusion`` in ``ensemble_boxes_wbf.py``, ``conf_type='avg'`` without
``allows_overflow``). So a cluster scores ``sum(scores) / T`` when ``M <= T``: where the views
agree (every view's box in one cluster, ``M = T``) the score is eq. 4's mean, and where they
disagree (each view's box its own cluster, ``M = 1``) each cluster's score is divided by ``T``.
That rescaling, not eq. 4, is what lowers the fused score of a disputed label (notebook 02 checks it
by hand on two views).

Empty views (``empty_views``). The views passed in, ``T`` above, are a choice. The authors pass
only views that detected something, so a detection seen in one view of two keeps its score:
``'skip'`` (the default in ``params/default.yaml``) does that. ``'count'`` passes every view, so
a view that saw nothing pulls the score down (s/2 in the example), which makes the confidence
filter of eq. (6) stricter. NMS and soft-NMS scores are the same under both policies.

Masks (``mask_fusion``). ``'vote'``: each fused box collects the input detections whose box has
IoU > ``iou_thr`` with it (the cluster; for NMS the suppressed group) and its mask is their
score-weighted pixel vote ``sum(s_j m_j) / sum(s_j) >= 0.5``. ``'reprompt'``: the fused boxes are
passed to a ``reprompt(boxes) -> (masks, mask_scores)`` callable, e.g. the teacher's SAM 2
``segment_boxes`` (what the authors do). Per-detection ``extra`` arrays (e.g. SAM's
``mask_scores``) are fused by the same score-weighted average over the cluster.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from ensemble_boxes import weighted_boxes_fusion
from ensemble_boxes.ensemble_boxes_nms import cpu_soft_nms_float

from afss_utils.coco import box_iou
from afss_utils.teachers.base import Prediction

METHODS = ("wbf", "nms", "soft_nms")
# The values weighted_boxes_fusion accepts; anything else makes it call exit().
CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
EMPTY_VIEWS = ("skip", "count")
MASK_FUSIONS = ("vote", "reprompt")

Reprompt = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class FusionError(ValueError):
    """Bad fusion parameters or inputs; the message names the key or the view."""


@dataclass(frozen=True)
class FusionConfig:
    """How views are fused; built from the ``fusion`` section of the params.

    method: wbf | nms | soft_nms; iou_thr: tau of eq. (4) (the paper: 0.55); skip_box_thr:
    drop input boxes scoring below it; conf_type: WBF score rule (see ``CONF_TYPES``);
    empty_views: skip | count (module docstring); mask_fusion: vote | reprompt; top_k: keep the
    best k fused detections (None = all); sigma / soft_nms_thresh: Gaussian soft-NMS width and
    the decayed score below which a box is removed.
    """

    method: str = "wbf"
    iou_thr: float = 0.55
    skip_box_thr: float = 0.0
    conf_type: str = "avg"
    empty_views: str = "skip"
    mask_fusion: str = "vote"
    top_k: int | None = 1
    sigma: float = 0.5
    soft_nms_thresh: float = 0.001

    def __post_init__(self) -> None:
        for key, allowed in (
            ("method", METHODS),
            ("conf_type", CONF_TYPES),
            ("empty_views", EMPTY_VIEWS),
            ("mask_fusion", MASK_FUSIONS),
        ):
            value = getattr(self, key)
            if value not in allowed:
                raise FusionError(f"fusion.{key} = {value!r}; allowed: {', '.join(allowed)}")
        for key in ("iou_thr", "skip_box_thr", "soft_nms_thresh"):
            value = getattr(self, key)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not 0 <= value <= 1
            ):
                raise FusionError(f"fusion.{key} = {value!r}; must be a number in [0, 1]")
        if not isinstance(self.sigma, (int, float)) or not self.sigma > 0:
            raise FusionError(f"fusion.sigma = {self.sigma!r}; must be a number > 0")
        if self.top_k is not None and (
            not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 1
        ):
            raise FusionError(f"fusion.top_k = {self.top_k!r}; must be an integer >= 1 or null")

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> FusionConfig:
        """From the params' ``fusion`` mapping; an unknown key is an error naming it."""
        params = dict(params or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise FusionError(
                f"unknown fusion key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_views(views: list[Prediction], shape: tuple[int, int]) -> bool:
    """Validate view shapes; return whether the views carry masks."""
    height, width = shape
    with_masks = {v.masks is not None for v in views}
    if len(with_masks) > 1:
        raise FusionError("some views have masks and others do not; fuse like with like")
    has_masks = with_masks == {True}
    for k, view in enumerate(views):
        if not isinstance(view, Prediction):
            raise FusionError(f"view {k} is a {type(view).__name__}, not a Prediction")
        if has_masks and view.masks.shape[1:] != (height, width):
            raise FusionError(
                f"view {k}: masks are {view.masks.shape[1:]}, the image is {(height, width)}"
            )
        if not np.all(np.isfinite(view.boxes)) or not np.all(np.isfinite(view.scores)):
            raise FusionError(f"view {k}: boxes and scores must be finite")
        if len(view) and (view.scores.min() < 0 or view.scores.max() > 1 + 1e-6):
            raise FusionError(
                f"view {k}: scores must lie in [0, 1], got [{view.scores.min()}, {view.scores.max()}]"
            )
    return has_masks


def _normalised(
    view: Prediction, shape: tuple[int, int], min_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices into the view, (M, 4) xyxy boxes normalised to [0, 1])."""
    height, width = shape
    boxes = np.clip(
        view.boxes.astype(np.float64) / np.array([width, height, width, height]), 0.0, 1.0
    )
    keep = (
        (boxes[:, 2] > boxes[:, 0])
        & (boxes[:, 3] > boxes[:, 1])
        & (view.scores > 0)
        & (view.scores >= min_score)
    )
    idx = np.flatnonzero(keep)
    return idx, boxes[idx]


def fuse(
    views: list[Prediction],
    image_shape: tuple[int, int],
    cfg: FusionConfig | None = None,
    reprompt: Reprompt | None = None,
) -> Prediction:
    """Merge per-view predictions, all in the original frame, into one Prediction.

    views: Predictions with boxes (N_k, 4) xyxy pixels of the (H, W) image, masks (N_k, H, W)
    or None. image_shape: (H, W). reprompt: ``boxes (M, 4) xyxy px -> (masks (M, H, W),
    mask_scores (M,))``, needed when ``cfg.mask_fusion == 'reprompt'``.
    Returns the fused detections, best first, at most ``cfg.top_k``; boxes (M, 4) xyxy pixels.
    """
    cfg = cfg or FusionConfig()
    height, width = int(image_shape[0]), int(image_shape[1])
    if cfg.mask_fusion == "reprompt" and reprompt is None:
        raise FusionError(
            "fusion.mask_fusion = 'reprompt' needs a reprompt callable (the teacher's segment_boxes)"
        )
    has_masks = _check_views(list(views), (height, width)) if views else False

    # Input detections that survive normalisation, with their view, in view order.
    kept = [_normalised(v, (height, width), cfg.skip_box_thr) for v in views]
    if sum(len(idx) for idx, _ in kept) == 0:
        return Prediction.empty(
            height, width, with_masks=has_masks or cfg.mask_fusion == "reprompt"
        )

    if cfg.method == "wbf" and cfg.empty_views == "skip":
        used = [k for k, (idx, _) in enumerate(kept) if len(idx)]
    else:
        used = list(range(len(views)))
    boxes_list = [kept[k][1] for k in used]
    scores_list = [views[k].scores[kept[k][0]].astype(np.float64) for k in used]
    labels_list = [np.zeros(len(kept[k][0])) for k in used]

    fboxes, fscores = _fuse_boxes(boxes_list, scores_list, labels_list, cfg)

    # Cluster membership, recovered from the fused boxes: ensemble_boxes does not return it.
    # Computed over all fused boxes before top_k, so a dropped cluster keeps its members.
    all_boxes = np.concatenate([kept[k][1] for k in used])
    all_scores = np.concatenate(scores_list)
    members = _clusters(fboxes, all_boxes, cfg.iou_thr)

    order = np.argsort(-fscores, kind="stable")
    if cfg.top_k is not None:
        order = order[: cfg.top_k]
    fboxes, fscores = fboxes[order], fscores[order]
    members = [members[i] for i in order]
    px_boxes = fboxes * np.array([width, height, width, height])
    weights = [np.maximum(all_scores[m], 1e-12) for m in members]

    extra = _average_extra(views, kept, used, members, weights)

    masks = None
    if cfg.mask_fusion == "reprompt":
        masks, mask_scores = reprompt(px_boxes.astype(np.float32))
        masks = np.asarray(masks, dtype=bool).reshape(len(px_boxes), height, width)
        extra["mask_scores"] = np.asarray(mask_scores, dtype=np.float64).reshape(-1)
    elif has_masks:
        masks = _vote_masks(views, kept, used, members, weights, (height, width))
    return Prediction(px_boxes.astype(np.float32), fscores.astype(np.float32), masks, extra)


def _fuse_boxes(
    boxes_list: list[np.ndarray],
    scores_list: list[np.ndarray],
    labels_list: list[np.ndarray],
    cfg: FusionConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The box step (eq. 4-5 for WBF): per-view (N_k, 4) normalised xyxy boxes and (N_k,) scores
    -> fused (M, 4) normalised xyxy boxes and (M,) scores clipped to [0, 1], in the order
    ensemble-boxes (or :func:`_suppress`) returns them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inputs are already clean; its warnings would be noise
        if cfg.method == "wbf":
            fboxes, fscores, _ = weighted_boxes_fusion(
                boxes_list,
                scores_list,
                labels_list,
                iou_thr=cfg.iou_thr,
                skip_box_thr=cfg.skip_box_thr,
                conf_type=cfg.conf_type,
            )
        else:
            fboxes, fscores = _suppress(
                np.concatenate(boxes_list), np.concatenate(scores_list), cfg
            )
    fboxes = np.asarray(fboxes, dtype=np.float64).reshape(-1, 4)
    fscores = np.clip(np.asarray(fscores, dtype=np.float64).reshape(-1), 0.0, 1.0)
    return fboxes, fscores


def _average_extra(
    views: list[Prediction],
    kept: list[tuple[np.ndarray, np.ndarray]],
    used: list[int],
    members: list[np.ndarray],
    weights: list[np.ndarray],
) -> dict[str, np.ndarray]:
    """Per-detection ``extra`` arrays every used view has, averaged over each fused box's
    members (indices into the used views' kept detections, concatenated) with its weights."""
    extra_keys = set.intersection(*(set(views[k].extra) for k in used)) if used else set()
    extra = {}
    for key in sorted(extra_keys):
        values = np.concatenate([views[k].extra[key][kept[k][0]].astype(np.float64) for k in used])
        extra[key] = np.array(
            [np.average(values[m], weights=w) for m, w in zip(members, weights, strict=True)]
        )
    return extra


def _vote_masks(
    views: list[Prediction],
    kept: list[tuple[np.ndarray, np.ndarray]],
    used: list[int],
    members: list[np.ndarray],
    weights: list[np.ndarray],
    shape: tuple[int, int],
) -> np.ndarray:
    """Score-weighted pixel vote of each fused box's member masks: a pixel is on where the
    members holding it carry at least half the weight. Returns (M, H, W) bool."""
    height, width = shape
    all_masks = [views[k].masks[kept[k][0]] for k in used]
    offsets = np.cumsum([0] + [len(m) for m in all_masks])
    masks = np.zeros((len(members), height, width), dtype=bool)
    for i, (m, w) in enumerate(zip(members, weights, strict=True)):
        vote = np.zeros((height, width), dtype=np.float64)
        for j, wj in zip(m, w, strict=True):
            view_k = int(np.searchsorted(offsets, j, side="right") - 1)
            vote += wj * all_masks[view_k][j - offsets[view_k]]
        masks[i] = vote >= 0.5 * w.sum()
    return masks


def _suppress(
    boxes: np.ndarray, scores: np.ndarray, cfg: FusionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """NMS (hard) or Gaussian soft-NMS over (M, 4) normalised boxes -> kept boxes, their scores.

    Calls ensemble_boxes' ``cpu_soft_nms_float`` (method 3 = hard NMS, 2 = Gaussian) rather than
    ``nms``/``soft_nms``: ``nms`` JIT-compiles with numba on its first call in every process
    (5-16 s here, for a handful of boxes), and ``soft_nms`` returns the *undecayed* input scores.
    The function decays ``scores`` in place, in the order of the indices it returns.
    """
    decayed = scores.astype(np.float64).copy()
    method, thresh = (2, cfg.soft_nms_thresh) if cfg.method == "soft_nms" else (3, 0.0)
    keep = cpu_soft_nms_float(
        boxes.copy(), decayed, Nt=cfg.iou_thr, sigma=cfg.sigma, thresh=thresh, method=method
    )
    return boxes[keep], decayed[decayed > thresh]


def _clusters(fused: np.ndarray, boxes: np.ndarray, iou_thr: float) -> list[np.ndarray]:
    """For each fused box, the indices of input boxes assigned to it.

    Each input goes to the fused box it overlaps most, if IoU > ``iou_thr`` (WBF's matching
    rule); a fused box left with no member takes its single best-overlapping input.
    """
    iou = box_iou(fused, boxes)  # (F, B)
    best = iou.argmax(axis=0) if len(fused) else np.zeros(0, int)
    ok = iou.max(axis=0) > iou_thr if len(fused) else np.zeros(0, bool)
    out = []
    for i in range(len(fused)):
        m = np.flatnonzero(ok & (best == i))
        out.append(m if len(m) else np.array([int(iou[i].argmax())]))
    return out
