"""A center-heatmap single-shot detector and classifier: the ResNet18 report's model
(``reference/resnet18-center-detector-report.md``; public code JoestHomann/
SpaceObjectDetectionClassification) as a third student beside YOLO11 and EfficientDet.

A ``timm`` backbone (default ``resnet18``, features only, its stride-32 map: a G x G grid, 10 x 10
at 320 px) feeds three 1x1 convolution heads:

- center: 1 channel of logits, "the object's center lies in this cell";
- box:    4 channels, sigmoid, the box ``cx, cy, w, h`` normalised to the whole (letterboxed) input;
- class:  C channels of logits, the spacecraft type.

Loss = ``center_weight`` * center + ``box_weight`` * box + ``class_weight`` * class (the report:
3, 5, 1). center is BCE-with-logits against a Gaussian heatmap (sigma in cells, truncated at 3
sigma) with positive cells weighted ``pos_weight`` (the report's k); box is SmoothL1 and class is
cross-entropy, both read at the ground-truth cell only. Prediction takes the argmax cell: its box,
its class, and its center probability as the score. Box only (no mask).

``stride`` 8 or 4 is the variant a reader of the CenterNet paper (Zhou et al. 2019, "Objects as
Points") would try first: the same backbone with an up-sampling neck (FPN-style top-down path to
the stride-8 or -4 map) and CenterNet's heads (3x3 conv + ReLU + 1x1): center (focal loss
against Gaussians whose width follows the object's size), a sub-cell **offset** (2 channels,
sigmoid: where in its cell the center lies), the **size** in pixels (2 channels, regressed as
``log(size / stride)``, L1) and the class. The report's box term weight scales offset + size;
``sigma`` and ``pos_weight`` are the stride-32 loss's only.

Boxes: ``xyxy`` pixels unless said otherwise; the network sees letterboxed (S, S) canvases
(:func:`afss_utils.students.training.letterbox`, image at the top-left), so a canvas box maps back to the
original image by a division by the letterbox scale.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils import coco
from afss_utils.config import cpu_cores, resolve_device, seed_everything, torch_threads
from afss_utils.datasets import Dataset
from afss_utils.progress import bar as progress_bar
from afss_utils.students.efficientdet import (
    FlipBatches,
    FlipPlans,
    LetterboxedChunks,
    Replayed,
    batch_loader,
)
from afss_utils.students.protocol import PREDICT_CONF
from afss_utils.students.training import (
    _to_tensor,
    as_float32,
    autocast_dtype,
    fit,
    letterbox,
    load_letterboxed,
    random_flips,
    resolve_precision,
)

STRIDE = 32  # the backbone's last feature map: ResNet layer4 / EfficientNet stage 7
STRIDES = (32, 8, 4)  # the report's grid; CenterNet's finer outputs (an up-sampling neck)
NECK_CHANNELS = 64  # CenterNet's head_conv width


# ---------------------------------------------------------------------------- targets


def box_cells(boxes_xyxy: np.ndarray, size: int, grid: int) -> np.ndarray:
    """(K, 4) xyxy canvas pixels -> (K, 2) int (row, col) of the cell holding each box center,
    on a ``grid`` x ``grid`` grid over an (size, size) canvas."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    col = np.clip(np.floor(cx / size * grid), 0, grid - 1).astype(int)
    row = np.clip(np.floor(cy / size * grid), 0, grid - 1).astype(int)
    return np.stack([row, col], axis=1)


def heatmap_target(cells: np.ndarray, grid: int, sigma) -> np.ndarray:
    """(grid, grid) float32 center target: a Gaussian ``exp(-d^2 / 2 sigma^2)`` of the distance
    ``d`` (in cells) to each (row, col) in ``cells`` (K, 2), exactly 1 at those cells, 0 beyond
    a radius of 3 sigma; overlapping objects take the maximum. ``sigma``: one width for all, or
    (K,) one per object (:func:`size_sigmas`). No cells: all zeros."""
    cells = np.asarray(cells, dtype=int).reshape(-1, 2)
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(cells),))
    if np.any(np.asarray(sigma) <= 0):
        raise ValueError(f"center.sigma must be > 0 (in cells), got {sigma}")
    rows, cols = np.mgrid[0:grid, 0:grid]
    out = np.zeros((grid, grid), dtype=np.float32)
    for (r, c), sg in zip(cells, sigmas, strict=True):
        d2 = (rows - r) ** 2 + (cols - c) ** 2
        g = np.exp(-d2 / (2 * sg**2))
        g[d2 > (3 * sg) ** 2] = 0.0
        out = np.maximum(out, g.astype(np.float32))
    return out


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's Gaussian radius (``gaussian_radius`` of its code, after CornerNet): the
    largest corner shift that keeps a box of (height, width) above ``min_overlap`` IoU with the
    original, the smallest of its three cases. Same unit as the inputs."""
    h, w = float(height), float(width)
    r1 = (h + w - math.sqrt((h + w) ** 2 - 4 * w * h * (1 - min_overlap) / (1 + min_overlap))) / 2
    r2 = (2 * (h + w) - math.sqrt(4 * (h + w) ** 2 - 16 * (1 - min_overlap) * w * h)) / 4
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (-b3 + math.sqrt(b3**2 - 16 * min_overlap * c3)) / (8 * min_overlap)
    return min(r1, r2, r3)


def size_sigmas(boxes_xyxy: np.ndarray, stride: int) -> np.ndarray:
    """(K, 4) xyxy canvas pixels -> (K,) Gaussian widths in cells of ``stride``, as CenterNet
    draws them: radius ``r = floor(gaussian_radius)`` cells, ``sigma = (2 r + 1) / 6``, so the
    target reaches 0 at about ``r`` cells (at least the center cell)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4) / stride
    radii = [max(0, int(gaussian_radius(y2 - y1, x2 - x1))) for x1, y1, x2, y2 in b]
    return (2 * np.asarray(radii, dtype=np.float64) + 1) / 6


def encode_boxes(boxes_xyxy: np.ndarray, size: int) -> np.ndarray:
    """(K, 4) xyxy canvas pixels -> (K, 4) float32 ``cx, cy, w, h`` normalised by ``size``."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    out = np.stack(
        [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
        axis=1,
    )
    return (out / size).astype(np.float32)


def decode_boxes(cxcywh: np.ndarray, size: int, scale: float, width: int, height: int):
    """(K, 4) normalised ``cx, cy, w, h`` -> (K, 4) xyxy pixels of the original (height, width)
    image (canvas pixels / letterbox ``scale``), clipped to the image."""
    c = np.asarray(cxcywh, dtype=np.float64).reshape(-1, 4) * size
    b = np.stack(
        [
            c[:, 0] - c[:, 2] / 2,
            c[:, 1] - c[:, 3] / 2,
            c[:, 0] + c[:, 2] / 2,
            c[:, 1] + c[:, 3] / 2,
        ],
        axis=1,
    )
    b = b / scale
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    return b


def fine_box_map(offset: np.ndarray, log_size: np.ndarray, stride: int, size: int) -> np.ndarray:
    """The fine heads as the stride-32 head's box map: offset (..., 2, G, G) in [0, 1] (x, y
    within the cell) and log_size (..., 2, G, G) ``log(w / stride), log(h / stride)`` -> (..., 4,
    G, G) ``cx, cy, w, h`` normalised by the canvas ``size``, so :func:`decode` reads both alike."""
    offset, log_size = np.asarray(offset, np.float64), np.asarray(log_size, np.float64)
    grid = offset.shape[-1]
    rows, cols = np.mgrid[0:grid, 0:grid].astype(np.float64)
    cx = (cols + offset[..., 0, :, :]) * stride
    cy = (rows + offset[..., 1, :, :]) * stride
    wh = np.exp(log_size) * stride
    return (np.stack([cx, cy, wh[..., 0, :, :], wh[..., 1, :, :]], axis=-3) / size).astype(
        np.float32
    )


def fine_targets(box_target, cells, stride: int, size: int):
    """The fine heads' targets (torch): box_target (K, 4) normalised ``cx, cy, w, h`` and cells
    (K, 2) long (row, col) -> offset (K, 2) ``cx / stride - col, cy / stride - row`` in [0, 1]
    and log size (K, 2) ``log(w / stride), log(h / stride)``."""
    px = box_target * (size / stride)
    return px[:, :2] - cells.flip(1).to(px), px[:, 2:].clamp_min(1e-3).log()


def local_peaks(center_logits: np.ndarray) -> np.ndarray:
    """(..., G, G) logits with every cell that is not the maximum of its 3 x 3 neighbourhood set
    to -inf: CenterNet's max-pool "NMS", so one object gives one detection."""
    from scipy.ndimage import maximum_filter

    size = (1,) * (center_logits.ndim - 2) + (3, 3)
    peak = maximum_filter(center_logits, size=size, mode="constant", cval=-np.inf)
    return np.where(center_logits >= peak, center_logits, -np.inf)


@dataclass
class CenterDetection:
    """One decoded detection: ``box`` (4,) xyxy original pixels, ``score`` = sigmoid of the
    center logit, ``cell`` (row, col), ``label`` = class index (argmax of the class head)."""

    box: np.ndarray
    score: float
    cell: tuple[int, int]
    label: int


def decode(
    center_logits: np.ndarray,
    box_map: np.ndarray,
    class_logits: np.ndarray | None,
    size: int,
    scale: float,
    width: int,
    height: int,
    top_k: int | None = 1,
) -> list[CenterDetection]:
    """One image's head outputs -> its detections, best first.

    center_logits (G, G); box_map (4, G, G) sigmoid ``cx, cy, w, h`` / ``size``; class_logits
    (C, G, G) or None. The ``top_k`` most probable cells (None: all) each give one box read at
    that cell (the report uses the argmax cell only: ``top_k=1``).
    """
    grid = center_logits.shape[-1]
    flat = np.asarray(center_logits, dtype=np.float64).reshape(-1)
    order = np.argsort(-flat, kind="stable")[: top_k or len(flat)]
    out = []
    for k in order:
        r, c = divmod(int(k), grid)
        box = decode_boxes(box_map[:, r, c], size, scale, width, height)[0]
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        label = 0 if class_logits is None else int(np.argmax(class_logits[:, r, c]))
        score = 1.0 / (1.0 + math.exp(-flat[k]))
        out.append(CenterDetection(box, score, (r, c), label))
    return out


# ---------------------------------------------------------------------------- model and loss


def build_model(
    backbone: str = "resnet18", num_classes: int = 1, weights: str | None = None, stride: int = 32
):
    """The network: ``timm`` ``backbone`` (features only) + heads. Random init unless ``weights``
    names a local backbone state dict (timm naming), or is ``imagenet_lite0`` for the offline
    EfficientNet-Lite0 checkpoint (backbone ``tf_efficientnet_lite0``, see
    :mod:`afss_utils.backbones`).

    ``stride`` 32 (the report): three 1x1 heads on the last feature map. Forward: (B, 3, S, S) ->
    dict ``center`` (B, 1, G, G) logits, ``box`` (B, 4, G, G) in (0, 1), ``cls`` (B, C, G, G),
    G = S / 32. ``stride`` 8 or 4 (CenterNet): a top-down neck (1x1 laterals to 64 channels,
    nearest 2x up-sampling and sums, a 3x3 conv-BN-ReLU) down to that stride, and 3x3-ReLU-1x1
    heads: ``center``, ``offset`` (B, 2, G, G) in (0, 1), ``size`` (B, 2, G, G) log(size /
    stride), G = S / stride; ``cls`` stays the report's 1x1 head on the stride-32 map
    (B, C, S / 32, S / 32)."""
    import timm
    import torch
    from torch import nn

    if stride not in STRIDES:
        raise ValueError(f"center stride must be one of {STRIDES}, got {stride}")

    def head(ch_in: int, ch_out: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(ch_in, NECK_CHANNELS, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(NECK_CHANNELS, ch_out, 1),
        )

    class CenterNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stride = stride
            self.backbone = (
                timm.create_model(backbone, pretrained=False, features_only=True, out_indices=(-1,))
                if stride == STRIDE
                else timm.create_model(backbone, pretrained=False, features_only=True)
            )
            info = self.backbone.feature_info
            reductions, channels = info.reduction(), info.channels()
            if reductions[-1] != STRIDE or stride not in reductions:
                raise ValueError(
                    f"center.backbone {backbone!r}: feature strides {reductions}, need "
                    f"{STRIDE} last and {stride} among them"
                )
            if stride == STRIDE:
                ch = channels[-1]
                self.center = nn.Conv2d(ch, 1, 1)
                self.box = nn.Conv2d(ch, 4, 1)
                self.cls = nn.Conv2d(ch, num_classes, 1)
                # start the center head at a low "object here" probability (one positive cell
                # of G*G), as detection heads do, so early training is not swamped by negatives
                nn.init.constant_(self.center.bias, -math.log(99.0))
                return
            self.levels = [i for i, r in enumerate(reductions) if r >= stride]
            self.lateral = nn.ModuleList(
                nn.Conv2d(channels[i], NECK_CHANNELS, 1) for i in self.levels
            )
            self.smooth = nn.Sequential(
                nn.Conv2d(NECK_CHANNELS, NECK_CHANNELS, 3, padding=1, bias=False),
                nn.BatchNorm2d(NECK_CHANNELS),
                nn.ReLU(),
            )
            self.center = head(NECK_CHANNELS, 1)
            self.offset = head(NECK_CHANNELS, 2)
            self.size = head(NECK_CHANNELS, 2)
            # the type is a property of the whole object: read it where the report does, from
            # the stride-32 map (a 64-channel stride-8 head learnt 45 % against 83 % in 300 steps)
            self.cls = nn.Conv2d(channels[-1], num_classes, 1)
            nn.init.constant_(self.center[-1].bias, -2.19)  # CenterNet's init: p = 0.1

        def forward(self, x):
            feats = self.backbone(x)
            if self.stride == STRIDE:
                f = feats[-1]
                return {
                    "center": self.center(f),
                    "box": torch.sigmoid(self.box(f)),
                    "cls": self.cls(f),
                }
            levels = [feats[i] for i in self.levels]
            f = self.lateral[-1](levels[-1])
            for lat, skip in zip(self.lateral[-2::-1], levels[-2::-1], strict=True):
                f = nn.functional.interpolate(f, size=skip.shape[-2:], mode="nearest") + lat(skip)
            f = self.smooth(f)
            return {
                "center": self.center(f),
                "offset": torch.sigmoid(self.offset(f)),
                "size": self.size(f),
                "cls": self.cls(levels[-1]),
            }

    net = CenterNet()
    if weights:
        if weights == "imagenet_lite0":
            from afss_utils.backbones import efficientnet_lite0_state_dict

            state = efficientnet_lite0_state_dict()
        else:
            if not Path(weights).is_file():
                raise FileNotFoundError(f"center.weights: no such backbone state dict: {weights}")
            state = torch.load(weights, map_location="cpu")
        missing, unexpected = net.backbone.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(
                f"center.weights {weights}: backbone {backbone!r} lacks {len(missing)} tensors "
                f"(e.g. {missing[:3]})"
            )
    return net


def freeze_stages(backbone, stages: int) -> list[str]:
    """Keep the weights of a ``timm`` features-only ``backbone``'s first ``stages`` feature
    stages (and its stem) as loaded, as detectron2's ``FREEZE_AT`` does for ImageNet backbones:
    the early, generic filters need no new training, and their backward pass is the costliest
    per weight (the largest feature maps). Returns the frozen parameter names (none for 0)."""
    if stages <= 0:
        return []
    info = backbone.feature_info
    if stages > len(info):
        raise ValueError(f"center.frozen_stages: the backbone has {len(info)} stages, got {stages}")
    last = info.module_name(stages - 1)
    names = [n for n, _ in backbone.named_parameters()]
    inside = [i for i, n in enumerate(names) if n.startswith(last + ".")]
    if not inside:
        raise ValueError(f"center.frozen_stages: no parameters in stage {last!r}")
    frozen = names[: inside[-1] + 1]
    params = dict(backbone.named_parameters())
    for n in frozen:
        params[n].requires_grad_(False)
    return frozen


@dataclass
class LossWeights:
    """The report's loss: ``center * center_loss + box * box_loss + cls * class_loss``, Gaussian
    ``sigma`` (cells) and positive-cell weight ``pos_weight`` (k)."""

    center: float = 3.0
    box: float = 5.0
    cls: float = 1.0
    sigma: float = 0.5
    pos_weight: float = 25.0


def center_loss(
    outputs: dict, heatmaps, cells: list[np.ndarray], labels: list[np.ndarray], w: LossWeights
) -> dict:
    """The three losses and their weighted sum for a batch: dict ``loss``, ``center``, ``box``,
    ``cls`` (scalar tensors).

    outputs: the model's dict plus ``box_target`` (sum K, 4) normalised ``cx, cy, w, h`` (the
    images' :func:`encode_boxes` rows, concatenated); heatmaps (B, G, G) float tensor
    (:func:`heatmap_target`); cells per image (K, 2) (row, col); labels per image (K,) class
    indices. Box and class terms are read at the ground-truth cells only.

    The center term is BCE minus the heatmap's own entropy (a KL divergence): the same gradient
    as the report's BCE, but exactly 0 for a perfect prediction, so its value reads as a distance.
    """
    import torch
    import torch.nn.functional as F

    logits = outputs["center"][:, 0]
    t = heatmaps.to(logits.dtype)
    weight = torch.where(t >= 1.0, torch.full_like(t, w.pos_weight), torch.ones_like(t))
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    tc = t.clamp(1e-7, 1 - 1e-7)
    entropy = -(t * torch.log(tc) + (1 - t) * torch.log(1 - tc))
    l_center = (weight * (bce - entropy)).mean()

    b_idx, rc = _gt_cells(cells)
    zero = logits.sum() * 0.0
    if len(b_idx):
        pred_box = outputs["box"][b_idx, :, rc[:, 0], rc[:, 1]]
        l_box = F.smooth_l1_loss(pred_box, outputs["box_target"].to(pred_box.dtype))
        l_cls = _class_loss(outputs["cls"], b_idx, rc, labels, w, zero)
    else:
        l_box = l_cls = zero
    return _weighted(w, l_center, l_box, l_cls)


def _gt_cells(cells: list[np.ndarray]):
    """Per-image (K, 2) ground-truth cells -> (sum K,) batch indices and (sum K, 2) long (row,
    col): where the box and class heads are read."""
    import torch

    b_idx = torch.cat([torch.full((len(c),), i, dtype=torch.long) for i, c in enumerate(cells)])
    rc = torch.from_numpy(np.concatenate([c.reshape(-1, 2) for c in cells]).astype(np.int64))
    return b_idx, rc


def _class_loss(cls_map, b_idx, rc, labels: list[np.ndarray], w: LossWeights, zero):
    """Cross-entropy of the class logits ``cls_map`` (B, C, G, G) read at (b_idx, rc) against the
    per-image labels; ``zero`` when the class loss is off (one category)."""
    import torch
    import torch.nn.functional as F

    if w.cls <= 0:
        return zero
    lab = torch.from_numpy(np.concatenate(labels).astype(np.int64)).to(cls_map.device)
    return F.cross_entropy(cls_map[b_idx, :, rc[:, 0], rc[:, 1]], lab)


def _weighted(w: LossWeights, l_center, l_box, l_cls) -> dict:
    total = w.center * l_center + w.box * l_box + w.cls * l_cls
    return {"loss": total, "center": l_center, "box": l_box, "cls": l_cls}


def focal_loss(logits, heatmaps, alpha: float = 2.0, beta: float = 4.0):
    """CenterNet's penalty-reduced pixel-wise focal loss (its eq. 1): logits (B, G, G), heatmaps
    (B, G, G) Gaussian targets (1 at the centers). Summed over cells, divided by the number of
    centers (at least 1)."""
    import torch
    import torch.nn.functional as F

    t = heatmaps.to(logits.dtype)
    pos = t >= 1.0
    p = torch.sigmoid(logits)
    log_p, log_1p = F.logsigmoid(logits), F.logsigmoid(-logits)
    pos_term = ((1 - p) ** alpha * log_p)[pos].sum()
    neg_term = ((1 - t) ** beta * p**alpha * log_1p)[~pos].sum()
    return -(pos_term + neg_term) / pos.sum().clamp_min(1)


def fine_loss(
    outputs: dict,
    heatmaps,
    cells: list[np.ndarray],
    labels: list[np.ndarray],
    w: LossWeights,
    stride: int,
    size: int,
) -> dict:
    """The stride-8/4 heads' losses (CenterNet's): dict ``loss``, ``center`` (:func:`focal_loss`),
    ``box`` (L1 of the sub-cell offset plus L1 of the log size, at the ground-truth cells),
    ``cls`` (cross-entropy at the stride-32 cells holding them: the class map is coarse). Same
    inputs as :func:`center_loss`; weighted by ``w.center``, ``w.box`` and ``w.cls``."""
    import torch.nn.functional as F

    logits = outputs["center"][:, 0]
    l_center = focal_loss(logits, heatmaps)
    b_idx, rc = _gt_cells(cells)
    zero = logits.sum() * 0.0
    if len(b_idx):
        off_t, size_t = fine_targets(outputs["box_target"].float(), rc, stride, size)
        off = outputs["offset"][b_idx, :, rc[:, 0], rc[:, 1]]
        log_size = outputs["size"][b_idx, :, rc[:, 0], rc[:, 1]]
        l_box = F.l1_loss(off, off_t.to(off.device)) + F.l1_loss(log_size, size_t.to(off.device))
        coarse = rc // (STRIDE // stride)  # the stride-32 cell holding each fine cell
        l_cls = _class_loss(outputs["cls"], b_idx, coarse, labels, w, zero)
    else:
        l_box = l_cls = zero
    return _weighted(w, l_center, l_box, l_cls)


def image_labels(instances: dict) -> tuple[list[np.ndarray], list[dict]]:
    """Per image (in ``instances["images"]`` order) the (K,) class indices of its annotations
    (json order, as :func:`afss_utils.students.load_letterboxed` gives the boxes), and the
    categories sorted by id (class index i = ``categories[i]``)."""
    cats = sorted(instances.get("categories") or list(coco.CATEGORIES), key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    by_image: dict[int, list[int]] = {img["id"]: [] for img in instances["images"]}
    for a in instances["annotations"]:
        cid = a.get("category_id", cats[0]["id"])
        if cid not in index:
            raise ValueError(f"annotation {a.get('id')}: category_id {cid} not in categories")
        by_image[a["image_id"]].append(index[cid])
    return [np.array(by_image[img["id"]], dtype=np.int64) for img in instances["images"]], cats


# ---------------------------------------------------------------------------- student


class CenterNetStudent:
    """The report's center-heatmap detector/classifier as a study student (:class:`Student`).

    Trained with its own small loop on letterboxed canvases cached in memory, random flips,
    AdamW and linear warm-up + cosine decay (the pieces EfficientDet uses). The class head
    trains only when the training json has more than one category: pseudo-labels carry the one
    ``spacecraft`` category, so the detector then trains with the class loss off.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str | None = None,
        epochs: int = 30,
        imgsz: int = 320,
        batch: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        center_weight: float = 3.0,
        box_weight: float = 5.0,
        class_weight: float = 1.0,
        sigma: float = 0.5,
        pos_weight: float = 25.0,
        warmup_epochs: float = 1.0,
        steps: int = 1000,
        precision: str = "auto",
        device: str = "cpu",
        seed: int = 0,
        top_k: int | None = 1,
        conf: float = PREDICT_CONF,
        stride: int = STRIDE,
        frozen_stages: int = 0,
    ):
        if imgsz % STRIDE:
            raise ValueError(f"center.imgsz must be a multiple of {STRIDE}, got {imgsz}")
        if stride not in STRIDES:
            raise ValueError(f"center stride must be one of {STRIDES}, got {stride}")
        suffix = "" if stride == STRIDE else f"_s{stride}"
        self.name, self.iou_types = f"center_{backbone}{suffix}", ("bbox",)
        self.stride, self.frozen_stages = stride, frozen_stages
        self.backbone, self.weights = backbone, weights
        self.epochs, self.imgsz, self.batch, self.steps = epochs, imgsz, batch, steps
        self.lr, self.weight_decay, self.warmup_epochs = lr, weight_decay, warmup_epochs
        self.loss_weights = LossWeights(center_weight, box_weight, class_weight, sigma, pos_weight)
        self.device, self.seed, self.top_k, self.conf = resolve_device(device), seed, top_k, conf
        self.precision = resolve_precision(precision, self.device, key="center.precision")
        self.net = None
        self.categories: list[dict] = list(coco.CATEGORIES)
        self.train_seconds: float | None = None
        self.history: list[dict] = []

    @property
    def grid(self) -> int:
        """Cells per side of the output map (the report's grid at stride 32)."""
        return self.imgsz // self.stride

    def steps_per_epoch(self, n_images: int) -> int:
        return max(1, n_images // self.batch)  # the training loop drops the ragged batch

    @classmethod
    def from_params(cls, params: dict, **overrides: Any) -> CenterNetStudent:
        # notebooks that predate this student pass no "center" section: use the defaults
        opts = {**params.get("center", {}), **overrides}
        return cls(
            device=params.get("device", "cpu"),
            seed=params.get("seed", 0),
            top_k=params.get("top_k", 1),
            **opts,
        )

    def train(
        self,
        train_instances: dict,
        image_dir: str | os.PathLike,
        out_dir: str | os.PathLike,
        val: tuple[dict, str | os.PathLike] | None = None,
        epochs: int | None = None,
    ) -> CenterNetStudent:
        """Train on ``train_instances`` for ``epochs`` (default ``self.epochs``; ``val`` is
        accepted for the interface and unused: fixed schedule, no model selection). Saves
        ``out_dir/weights.pt`` (with the categories)."""
        import torch

        epochs = epochs or self.epochs
        seed_everything(self.seed)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not train_instances["images"]:
            raise ValueError(f"{self.name}: empty training set")
        labels, self.categories = image_labels(train_instances)
        weights = self.loss_weights
        if len(self.categories) < 2:
            weights = LossWeights(**{**vars(weights), "cls": 0.0})
        canvases, boxes, extents = load_letterboxed(
            train_instances, image_dir, self.imgsz, desc=f"{self.name} load"
        )
        device = torch.device(self.device)
        # channels-last is the layout oneDNN's CPU convolutions run fastest in: a bare bf16
        # step of EfficientNet-Lite0 at 256 px (the classification backbone) 1.17 vs 1.77 s
        # here; ResNet18 gains little in the training loop
        net = build_model(self.backbone, len(self.categories), self.weights, self.stride).to(
            device, memory_format=torch.channels_last
        )
        freeze_stages(net.backbone, self.frozen_stages)
        amp_dtype = autocast_dtype(self.precision)  # None: fp32
        # floor, so every batch holds >= `batch` images (BatchNorm on a ragged batch of one)
        steps_per_epoch = self.steps_per_epoch(len(canvases))
        rng = np.random.default_rng(self.seed)
        batches = iter(
            batch_loader(
                FlipBatches(partial(self._batch, canvases, boxes, extents, labels)),
                device,
                self.seed,
                sampler=FlipPlans(len(canvases), steps_per_epoch, epochs, rng),
            )
        )

        def step_losses(batch):
            x, heat, cells, box_t, labs = batch
            x = x.to(device, memory_format=torch.channels_last, non_blocking=True)
            # the network in bf16 (~2x faster where the CPU has it), the loss in float32
            with torch.autocast(
                device.type, dtype=amp_dtype or torch.bfloat16, enabled=bool(amp_dtype)
            ):
                out = net(x)
            out = as_float32(out)
            out["box_target"] = box_t.to(device, non_blocking=True)
            heat = heat.to(device, non_blocking=True)
            if self.stride == STRIDE:
                return center_loss(out, heat, cells, labs, weights)
            return fine_loss(out, heat, cells, labs, weights, self.stride, self.imgsz)

        t0 = time.perf_counter()
        self.history = fit(
            net,
            step_losses,
            batches,
            epochs,
            steps_per_epoch,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            # fp16 (CUDA only) scales the loss so small gradients do not underflow
            scale_loss=self.precision == "fp16",
            desc=f"{self.name} train",
        )
        self.train_seconds = time.perf_counter() - t0
        self.net = net.eval()
        torch.save(
            {"state_dict": net.state_dict(), "categories": self.categories}, out_dir / "weights.pt"
        )
        return self

    def _batch(
        self, canvases, boxes, extents, labels, idx, rng: np.random.Generator | Replayed
    ) -> tuple[Any, Any, list[np.ndarray], Any, list[np.ndarray]]:
        """The images ``idx`` (B,), flipped: canvases (B, 3, S, S) tensor, heatmaps (B, G, G),
        per-image GT cells (K, 2), the (sum K, 4) normalised box targets and per-image labels
        (K,). CPU tensors: on CUDA they are built in DataLoader workers."""
        import torch

        imgs, heat, cells, box_t, labs = [], [], [], [], []
        for i in idx:
            img, b = random_flips(canvases[i], boxes[i], extents[i], rng)
            c = box_cells(b, self.imgsz, self.grid)
            imgs.append(img)
            sigma = (
                self.loss_weights.sigma if self.stride == STRIDE else size_sigmas(b, self.stride)
            )
            heat.append(heatmap_target(c, self.grid, sigma))
            cells.append(c)
            box_t.append(encode_boxes(b, self.imgsz))
            labs.append(labels[i])
        return (
            _to_tensor(np.stack(imgs)),
            torch.from_numpy(np.stack(heat)),
            cells,
            torch.from_numpy(np.concatenate(box_t).reshape(-1, 4)),
            labs,
        )

    def forward_images(self, images: list[np.ndarray]) -> tuple[dict, list[float]]:
        """Head outputs as numpy for (H, W, 3) uint8 images, and each image's letterbox scale."""
        if self.net is None:
            raise RuntimeError(f"{self.name}: train() (or load()) before predict()")
        boxed = [letterbox(im, self.imgsz) for im in images]
        return self._forward(_to_tensor(np.stack([c for c, _ in boxed]))), [s for _, s in boxed]

    def _forward(self, x) -> dict:
        """(B, 3, S, S) normalised inputs -> the heads as numpy: ``center`` (B, 1, G, G),
        ``box`` (B, 4, G, G) normalised ``cx, cy, w, h`` (the fine heads' offset and size turned
        into it by :func:`fine_box_map`), ``cls`` (B, C, G, G) (a coarse class map repeated onto
        the fine cells it holds)."""
        import torch

        with torch.no_grad(), torch_threads(cpu_cores()):
            out = self.net.eval()(x.to(torch.device(self.device), non_blocking=True))
        out = {k: v.float().cpu().numpy() for k, v in out.items()}
        if self.stride != STRIDE:
            offset, log_size = out.pop("offset"), out.pop("size")
            out["box"] = fine_box_map(offset, log_size, self.stride, self.imgsz)
            k = STRIDE // self.stride
            out["cls"] = out["cls"].repeat(k, axis=-2).repeat(k, axis=-1)
        return out

    def predict(self, dataset: Dataset, batch: int | None = None) -> list[dict]:
        """COCO results, ``top_k`` per image: ``bbox`` xywh original pixels, ``score`` the
        center probability, ``category_id`` the class head's category (1 ``spacecraft`` for a
        detector), plus ``class_name`` and ``cell`` [row, col] on the report's stride-32 grid (at
        stride 32 the argmax cell; finer outputs give the stride-32 cell of their center, so the
        center-cell accuracy means the same for both). Finer outputs keep only local maxima (3 x 3,
        CenterNet's peak extraction) when ``top_k`` > 1."""
        if self.net is None:
            raise RuntimeError(f"{self.name}: train() (or load()) before predict()")
        chunks = LetterboxedChunks(dataset, batch or self.batch, self.imgsz)
        out: list[dict] = []
        for chunk, x, scales, sizes in progress_bar(
            batch_loader(chunks, self.device, self.seed),
            total=len(chunks),
            desc=f"{self.name} predict",
            leave=False,
        ):
            heads = self._forward(x)
            if self.stride != STRIDE and self.top_k != 1:
                heads["center"] = local_peaks(heads["center"])
            for j, image_id in enumerate(chunk):
                dets = decode(
                    heads["center"][j, 0],
                    heads["box"][j],
                    heads["cls"][j],
                    self.imgsz,
                    scales[j],
                    sizes[j][0],
                    sizes[j][1],
                    self.top_k,
                )
                for d in dets:
                    if d.score < self.conf:
                        continue
                    cat = self.categories[d.label]
                    out.append(
                        coco.result_record(
                            image_id,
                            d.box,
                            d.score,
                            category_id=cat["id"],
                            class_name=cat["name"],
                            cell=self._report_cell(d, heads["box"][j]),
                        )
                    )
        return out

    def _report_cell(self, det: CenterDetection, box_map: np.ndarray) -> list[int]:
        """The detection's [row, col] on the stride-32 grid: its own cell at stride 32, else the
        stride-32 cell of its (unclipped) center on the canvas. box_map (4, G, G) normalised."""
        if self.stride == STRIDE:
            return list(det.cell)
        cx, cy = box_map[:2, det.cell[0], det.cell[1]] * self.imgsz
        grid = self.imgsz // STRIDE
        return [int(np.clip(cy // STRIDE, 0, grid - 1)), int(np.clip(cx // STRIDE, 0, grid - 1))]

    def load(self, weights: str | os.PathLike) -> CenterNetStudent:
        import torch

        ckpt = torch.load(weights, map_location="cpu")
        self.categories = ckpt["categories"]
        self.net = build_model(self.backbone, len(self.categories), stride=self.stride)
        self.net.load_state_dict(ckpt["state_dict"])
        # loaded on the CPU: predict() feeds inputs on self.device (CUDA on the paper path)
        self.net.to(torch.device(self.device)).eval()
        return self
