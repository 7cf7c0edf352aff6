"""SDT-Net (Zhuang et al., ``reference/sdt-net-debris-tracking-paper.md`` §4), compact: a
CenterTrack-style tracker that finds each line-source debris by its two endpoints and links
frames by where each endpoint was one frame before.

The network (:func:`build_model`, §4.2-4.5) takes the current frame ``I_t``, the previous frame
``I_{t-1}`` and the previous frame's endpoint heatmap ``H_{t-1}``, each through its own
conv-BN-ReLU to 3 channels, summed (eq. of §4.2: the sum has the 3 channels of an image, so the
backbone's stem stays as it is, ImageNet-shaped), into a ``timm`` ``features_only`` backbone.
The paper's DLA-34 is replaced by ResNet18: the study trains on 2 CPU cores, where DLA-34's
stride-4 aggregation nodes cost several times ResNet18's forward pass; any timm backbone with
stride-4 and stride-32 features can be named. A small FPN/IDA-style up-sampler (1x1 laterals,
2x up-sampling and sums, a 3x3 conv-BN-ReLU after each sum) brings the features to stride 4:
``F_b``. Heads (3x3 conv + ReLU + 1x1, all at stride 4):

- RoI-FE (§4.3, variant ``full`` only): a second up-sampler of the same shape with its own
  weights gives a debris-mask logit ``M``; ``F_en = sigmoid(M) * F_b`` (eq. 7) feeds every other
  head. ``M`` is trained by BCE (eq. 8) on the streak rasterised at stride 4.
- endpoint heatmaps (§4.4.1): 2 channels, sigmoid, CenterNet's focal loss (eq. 9) on Gaussians
  of fixed width ``sigma`` **in output cells** (an endpoint has no size, so CenterNet's
  size-based radius rule does not apply), exactly 1 at each endpoint's cell. Channel 0 holds
  **left** endpoints: the endpoint with the smaller x, on a tie the smaller y; channel 1 the
  other (**right**) one. Both endpoints of a debris move by the same velocity (the streak is the
  trail of its motion), so a left endpoint stays left from frame to frame.
- line-source embedding (§4.4.2): 1 value per endpoint channel; pull (eq. 11) draws a debris'
  two values to their mean, push (eq. 12, margin ``push_margin`` = the paper's Delta = 1)
  separates the means of different debris of a frame.
- sub-cell offset: 2 channels per endpoint, where in its stride-4 cell the endpoint lies
  (CenterNet's ``reg``; L1), so endpoints decode to the pixel.
- debris offset (§4.5): 2 channels per endpoint, its displacement **to** the same endpoint in
  the previous frame, in pixels (``c^{t-1} - c^t``: CenterTrack's sign, the negative of the
  paper's ``o`` in eqs. 13 and 15), L1 at ground-truth endpoint cells of debris that were in the
  previous frame.
- partner vector (not in the paper; endpoint variants with ``reach_weight`` > 0): 2 channels per
  endpoint, the vector to the debris' other endpoint in cells, L1 over the endpoint's 3 x 3
  cells (:func:`_reach`). CentripetalNet (Dong et al., CVPR 2020) replaced CornerNet's
  embedding by such shifts because an embedding cannot tell alike objects apart; here it is
  added to the embedding, not put in its place: side-by-side fragments look alike.

Variants (the paper's ablation, Table 3):

- ``"center"`` (a): CenterTrack on debris: a centre heatmap (CenterNet's Gaussian radius rule
  on the box size), the box size (cells, L1), the sub-cell offset and one debris offset for the
  centre; ``H_{t-1}`` is the previous centre heatmap.
- ``"endpoints"`` (b): endpoint heatmaps + embedding + sub-cell + debris offsets; no RoI-FE.
- ``"full"`` (d): ``endpoints`` + RoI-FE. (The paper's (c), RoI-FE without the offset module,
  is not built here: its tracking would need another association rule.)

Tracking (:func:`track`): each frame is decoded (:func:`decode`: heatmap peaks, left and right
endpoints paired by embedding, mask and partner vectors, :func:`pair_endpoints`), each
detection's endpoints shifted by its offsets give where it was a frame before, and
:func:`associate` matches those to the previous frame's tracks (Hungarian on the mean
endpoint distance, within ``radius`` pixels).
The previous frame's detections are drawn as Gaussians (as the training targets are) and fed
back as ``H_{t-1}``, as CenterTrack does. Boxes for MOT metrics are the endpoint pair's
axis-aligned hull padded by the streak: width ``streak_width`` across, ``box_pad`` on every
side (:mod:`afss_utils.debris.obb`, the simulator's box rule). The centre variant's box is its
predicted box; its "endpoints" are that box's corners (x1, y1), (x2, y2), both moved by the
centre's offset, so the one association rule serves all variants.

Training (:func:`train`) reads a list of :class:`Sample` (frame, previous frame, their
annotations): :func:`samples_from_frames` builds them from rendered videos,
:func:`samples_from_coco` from a COCO instances json + image folder (images carrying
``video_id``/``frame_id``, annotations ``track_id``, ``endpoints`` [x1, y1, x2, y2] and
``width``). Coordinates are pixels with pixel ``i``'s centre at ``i`` (the simulator's).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils.debris.obb import axis_pad, corners_to_xywh, streak_corners
from afss_utils.debris.simulation import DebrisFrame, zscale

__all__ = [
    "VARIANTS",
    "Detection",
    "SDTNetConfig",
    "Sample",
    "as_annotations",
    "associate",
    "associate_lost",
    "build_model",
    "collate",
    "decode",
    "detection_diagnosis",
    "embedding_losses",
    "endpoint_pairs",
    "focal_loss",
    "heatmap_peaks",
    "load",
    "losses",
    "pair_endpoints",
    "segment_support",
    "precise_bn",
    "prev_heatmap",
    "samples_from_coco",
    "samples_from_frames",
    "streak_boxes",
    "targets",
    "to_input",
    "track",
    "train",
]

VARIANTS = ("center", "endpoints", "full")
STRIDE = 4


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SDTNetConfig:
    """What the network is and how it is trained and decoded.

    Lengths in pixels unless said otherwise. Loss weights default to the paper's (§5.1:
    heatmap 10, embedding 1 for pull and push, offset 0.1, mask 1) and CenterNet's for the terms
    the paper does not name (sub-cell 1, size 0.1, centre heatmap 1).
    """

    variant: str = "full"  # "center" (ablation a), "endpoints" (b), "full" (d)
    backbone: str = "resnet18"  # timm name, built with pretrained=False
    channels: int = 64  # width of the up-samplers and heads
    stride: int = STRIDE  # output stride; only 4 (the paper's F_b)
    sigma: float = 1.0  # endpoint Gaussian width, output cells
    heatmap_weight: float = 10.0
    pull_weight: float = 1.0
    push_weight: float = 1.0
    push_margin: float = 1.0  # Delta of eq. 12
    subcell_weight: float = 1.0
    offset_weight: float = 0.1
    mask_weight: float = 1.0
    center_weight: float = 1.0
    size_weight: float = 0.1
    radius: float = 20.0  # association: largest mean endpoint distance, pixels (paper: 200
    # at 1524 px frames; debris here move 3-7 px per frame)
    max_age: int = 0  # frames a track missed by the detector may still be matched
    threshold: float = 0.3  # heatmap peak threshold
    max_objects: int = 32  # per frame: targets beyond it are dropped, peaks per channel
    pair_distance: float = 0.5  # largest embedding distance of a left-right pair (Delta / 2)
    # variant full: the RoI-FE mask along the segment also scores a pair (decode): the pair
    # needs a mean mask probability of line_min there, costs line_weight * (1 - that) more, and
    # may then differ in embedding by up to mask_pair_distance. Chosen on a dense validation
    # render (benchmarks/sdtnet_pairing.py --val 8): detection recall 0.32 -> 0.50 (Oracle),
    # 0.25 -> 0.35 (annotation-free), precision 0.51 -> 0.64 and 0.55 -> 0.58, same weights
    line_weight: float = 2.0
    line_min: float = 0.5
    mask_pair_distance: float = 2.0
    reach_weight: float = 0.0  # partner-vector head (endpoint variants), L1 in cells; 0: none
    reach_gate: float = 4.0  # pixels: a pair's endpoints must lie this near where each points
    streak_width: float = 2.0  # box rule: the simulator's mean width
    box_pad: float = 1.8  # box rule: the simulator's 1 + psf_sigma

    def __post_init__(self) -> None:
        def need(key: str, ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"SDTNetConfig.{key} must be {what}, got {getattr(self, key)!r}")

        need("variant", self.variant in VARIANTS, f"one of {', '.join(VARIANTS)}")
        need("backbone", isinstance(self.backbone, str) and bool(self.backbone), "a timm name")
        for key, low in (("channels", 1), ("max_objects", 1), ("max_age", 0)):
            v = getattr(self, key)
            need(
                key, isinstance(v, int) and not isinstance(v, bool) and v >= low, f"an int >= {low}"
            )
        need("stride", self.stride == STRIDE, f"{STRIDE} (the only output stride built)")
        for key in (
            "sigma",
            "radius",
            "pair_distance",
            "push_margin",
            "mask_pair_distance",
            "reach_gate",
        ):
            need(key, _number(getattr(self, key)) and getattr(self, key) > 0, "a number > 0")
        for key in (
            "heatmap_weight",
            "pull_weight",
            "push_weight",
            "subcell_weight",
            "offset_weight",
            "mask_weight",
            "center_weight",
            "size_weight",
            "streak_width",
            "box_pad",
            "line_weight",
            "reach_weight",
        ):
            need(key, _number(getattr(self, key)) and getattr(self, key) >= 0, "a number >= 0")
        need("threshold", _number(self.threshold) and 0 < self.threshold < 1, "in (0, 1)")
        need("line_min", _number(self.line_min) and 0 <= self.line_min <= 1, "in [0, 1]")

    @property
    def points(self) -> int:
        """Heatmap channels: 1 (the centre) or 2 (left, right endpoints)."""
        return 1 if self.variant == "center" else 2

    def to_dict(self) -> dict:
        return asdict(self)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------- geometry
def endpoint_pairs(annotations: Sequence[dict]) -> np.ndarray:
    """COCO annotations' ``endpoints`` -> (K, 2, 2) xy pixels ordered (left, right): left is the
    endpoint with the smaller x, on a tie the smaller y. No annotations: (0, 2, 2)."""
    ends = np.asarray([a["endpoints"] for a in annotations], float).reshape(-1, 2, 2)
    a, b = ends[:, 0], ends[:, 1]
    swap = (b[:, 0] < a[:, 0]) | ((b[:, 0] == a[:, 0]) & (b[:, 1] < a[:, 1]))
    return np.where(swap[:, None, None], ends[:, ::-1], ends)


def streak_boxes(endpoints: np.ndarray, width: float, pad: float) -> np.ndarray:
    """Endpoint pairs (N, 2, 2) xy pixels -> (N, 4) xyxy: the axis-aligned hull of the streak
    rectangle of ``width`` padded by ``pad`` on every side of the hull (the simulator's box,
    unclipped). None: (0, 4)."""
    ends = np.asarray(endpoints, float).reshape(-1, 2, 2)
    if not len(ends):
        return np.zeros((0, 4))
    xywh = corners_to_xywh(streak_corners(ends, width, axis_pad(ends, pad)))
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _boxes(annotations: Sequence[dict], ends: np.ndarray, config: SDTNetConfig) -> np.ndarray:
    """(K, 4) xyxy: each annotation's ``bbox`` (xywh) if it has one, else its streak box."""
    fallback = streak_boxes(ends, config.streak_width, config.box_pad)
    out = []
    for a, f in zip(annotations, fallback, strict=True):
        if a.get("bbox") is None:
            out.append(f)
        else:
            x, y, w, h = (float(v) for v in a["bbox"])
            out.append([x, y, x + w, y + h])
    return np.asarray(out, float).reshape(-1, 4)


def _points(
    annotations: Sequence[dict], config: SDTNetConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The heatmap points of a frame: (K, P, 2) xy pixels (P = 1 centre or 2 endpoints), (K,)
    Gaussian widths in cells and (K, 4) xyxy boxes; at most ``max_objects``."""
    annotations = list(annotations)[: config.max_objects]
    ends = endpoint_pairs(annotations)
    boxes = _boxes(annotations, ends, config)
    if config.variant == "center":
        from afss_utils.students.centernet import size_sigmas

        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        return centres[:, None], size_sigmas(boxes, config.stride).reshape(-1), boxes
    return ends, np.full(len(ends), float(config.sigma)), boxes


def _cells(points: np.ndarray, shape: tuple[int, int], stride: int) -> np.ndarray:
    """(..., 2) xy pixels -> (..., 2) int (col, row) of the stride cell holding each, clipped."""
    h, w = shape
    c = np.floor(np.asarray(points, float) / stride).astype(int)
    return np.stack([c[..., 0].clip(0, w - 1), c[..., 1].clip(0, h - 1)], axis=-1)


def _gaussians(cells: np.ndarray, sigmas: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(shape) float32: ``exp(-d^2 / 2 sigma^2)`` around each (col, row) of ``cells`` (K, 2),
    exactly 1 there, 0 beyond 3 sigma (at least the 3 x 3 neighbourhood), maximum where they
    overlap."""
    out = np.zeros(shape, np.float32)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    for (c, r), s in zip(np.asarray(cells).reshape(-1, 2), sigmas, strict=True):
        d2 = (cols - c) ** 2 + (rows - r) ** 2
        g = np.exp(-d2 / (2 * s**2))
        g[d2 > max(3 * s, 1.5) ** 2] = 0
        np.maximum(out, g.astype(np.float32), out=out)
    return out


def _heatmap(points: np.ndarray, sigmas: np.ndarray, shape: tuple[int, int], stride: int):
    """(P, h, w) float32 heatmaps of (K, P, 2) xy pixel points."""
    cells = _cells(points, shape, stride)
    return np.stack([_gaussians(cells[:, p], sigmas, shape) for p in range(points.shape[1])])


def _out_shape(size: tuple[int, int], stride: int) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h % stride or w % stride or h <= 0 or w <= 0:
        raise ValueError(f"frame size {size} must be positive multiples of the stride {stride}")
    return h // stride, w // stride


# ---------------------------------------------------------------------------- targets
def prev_heatmap(annotations: Sequence[dict], size: tuple[int, int], config: SDTNetConfig):
    """The ``H_{t-1}`` input drawn from a frame's annotations (or detections turned into
    annotations): (P, H/4, W/4) float32 tensor, P = ``config.points``. None: zeros."""
    import torch

    shape = _out_shape(size, config.stride)
    pts, sig, _ = _points(annotations, config)
    return torch.from_numpy(_heatmap(pts.reshape(-1, config.points, 2), sig, shape, config.stride))


def targets(
    annotations: Sequence[dict],
    prev_annotations: Sequence[dict],
    size: tuple[int, int],
    config: SDTNetConfig,
) -> dict:
    """One frame's training targets (torch tensors; K = ``max_objects``, P = ``config.points``,
    h, w = H/4, W/4 of ``size`` = (H, W) pixels).

    - ``heatmap`` (P, h, w) float: Gaussians, 1 at each point's cell (P=2: left, right);
    - ``prev_heatmap`` (P, h, w) float: the same drawn from ``prev_annotations`` (the input);
    - ``index`` (K, P) long: each point's cell as ``row * w + col``;
    - ``valid`` (K,) bool: which of the K rows are objects;
    - ``subcell`` (K, P, 2) float: point / 4 - cell, in [0, 1);
    - ``offset`` (K, P, 2) float pixels: the same track's point in the previous frame minus
      this one (matched by ``track_id``; left to left);
    - ``offset_valid`` (K,) bool: objects that were in the previous frame;
    - ``size`` (K, 2) float (``center`` only): box width, height in cells;
    - ``reach`` (4, h, w) float and ``reach_cells`` (2, h, w) float (endpoint variants): the
      partner vectors and where they are set (:func:`_reach`);
    - ``mask`` (1, h, w) float (``full`` only): the streak rectangles rasterised at stride 4
      (at least their centre line).
    No annotations: all-zero maps, no valid rows.
    """
    import cv2
    import torch

    shape = _out_shape(size, config.stride)
    k_max, p, s = config.max_objects, config.points, config.stride
    pts, sig, boxes = _points(annotations, config)
    pts = pts.reshape(-1, p, 2)
    k = len(pts)
    cells = _cells(pts, shape, s)
    index = np.zeros((k_max, p), np.int64)
    index[:k] = cells[..., 1] * shape[1] + cells[..., 0]
    valid = np.zeros(k_max, bool)
    valid[:k] = True
    subcell = np.zeros((k_max, p, 2), np.float32)
    subcell[:k] = pts / s - cells
    # previous positions by track id; a track new in this frame has no offset target
    prev_pts, _, _ = _points(prev_annotations, config)
    prev_ids = [a.get("track_id") for a in list(prev_annotations)[: config.max_objects]]
    by_id = {t: q for t, q in zip(prev_ids, prev_pts.reshape(-1, p, 2), strict=True)}
    offset = np.zeros((k_max, p, 2), np.float32)
    offset_valid = np.zeros(k_max, bool)
    for i, a in enumerate(list(annotations)[:k]):
        q = by_id.get(a.get("track_id"))
        if a.get("track_id") is not None and q is not None:
            offset[i] = q - pts[i]
            offset_valid[i] = True
    out = {
        "heatmap": torch.from_numpy(_heatmap(pts, sig, shape, s)),
        "prev_heatmap": prev_heatmap(prev_annotations, size, config),
        "index": torch.from_numpy(index),
        "valid": torch.from_numpy(valid),
        "subcell": torch.from_numpy(subcell),
        "offset": torch.from_numpy(offset),
        "offset_valid": torch.from_numpy(offset_valid),
    }
    if config.variant != "center":
        out["reach"], out["reach_cells"] = (torch.from_numpy(m) for m in _reach(pts, cells, shape))
    if config.variant == "center":
        wh = np.zeros((k_max, 2), np.float32)
        wh[:k] = (boxes[:, 2:] - boxes[:, :2]) / s
        out["size"] = torch.from_numpy(wh)
    if config.variant == "full":
        mask = np.zeros(shape, np.uint8)
        ends = endpoint_pairs(list(annotations)[:k])
        widths = [float(a.get("width", config.streak_width)) for a in list(annotations)[:k]]
        shift = 4  # cv2 sub-pixel vertices, 1/16 cell
        for e, c in zip(ends, streak_corners(ends, np.asarray(widths)), strict=True):
            # cell centres sit at (col + 0.5) * stride in pixels
            q = np.round((c / s - 0.5) * (1 << shift)).astype(np.int32)
            cv2.fillPoly(mask, [q], 1, shift=shift)
            line = np.round((e / s - 0.5) * (1 << shift)).astype(np.int32)
            cv2.line(mask, tuple(line[0]), tuple(line[1]), 1, 1, cv2.LINE_8, shift)
        out["mask"] = torch.from_numpy(mask[None].astype(np.float32))
    return out


def _reach(pts: np.ndarray, cells: np.ndarray, shape: tuple[int, int]):
    """The partner-vector targets of (K, 2, 2) endpoints (left, right) in pixels at their
    (K, 2, 2) cells: ``reach`` (4, h, w), the vector from each endpoint to the other in cells
    (x, y of left -> right, then of right -> left), and ``reach_cells`` (2, h, w), 1 where it
    is set: the endpoint's cell and its 3 x 3 neighbourhood. The neighbours carry the same
    vector (decoding adds it to the endpoint, not to the cell), so each endpoint gives nine
    regression samples instead of one, TTFNet's remedy for slowly learnt box regression; an
    endpoint's own cell wins over a neighbour's."""
    h, w = shape
    reach = np.zeros((4, h, w), np.float32)
    where = np.zeros((2, h, w), np.float32)
    vec = (pts[:, ::-1] - pts) / STRIDE  # (K, 2, 2): left -> right, right -> left
    for own in (False, True):
        for k in range(len(pts)):
            for q in range(2):
                c, r = cells[k, q]
                rr = slice(r, r + 1) if own else slice(max(r - 1, 0), r + 2)
                cc = slice(c, c + 1) if own else slice(max(c - 1, 0), c + 2)
                reach[2 * q : 2 * q + 2, rr, cc] = vec[k, q][:, None, None]
                where[q, rr, cc] = 1
    return reach, where


def collate(items: Sequence[dict]) -> dict:
    """Per-frame :func:`targets` -> the same keys stacked on a leading batch dimension."""
    import torch

    return {key: torch.stack([t[key] for t in items]) for key in items[0]}


# ---------------------------------------------------------------------------- network
def build_model(config: SDTNetConfig):
    """The network for ``config`` (random init; timm ``pretrained=False``).

    Forward ``(image, prev_image, prev_heatmap)``: images (B, 3, H, W) normalised
    (:func:`to_input`), prev_heatmap (B, P, H/4, W/4) -> dict at stride 4, h, w = H/4, W/4:
    ``heatmap`` (B, P, h, w) probabilities clamped to [1e-4, 1 - 1e-4], ``subcell`` (B, 2P, h,
    w) in (0, 1), ``offset`` (B, 2P, h, w) pixels; endpoint variants ``embedding`` (B, 2, h, w);
    ``full`` ``mask`` (B, 1, h, w) logits; ``center`` ``size`` (B, 2, h, w) cells; with
    ``reach_weight`` > 0 ``reach`` (B, 4, h, w) cells. Channels of the 2P maps: (x, y) of the
    left endpoint, then of the right one.
    """
    import timm
    import torch
    from torch import nn

    c, p = config.channels, config.points
    try:
        backbone = timm.create_model(config.backbone, pretrained=False, features_only=True)
    except RuntimeError as exc:  # timm: "Unknown model"
        raise ValueError(f"SDTNetConfig.backbone {config.backbone!r}: {exc}") from exc
    reductions = backbone.feature_info.reduction()
    if config.stride not in reductions or reductions[-1] != 32:
        raise ValueError(
            f"SDTNetConfig.backbone {config.backbone!r}: feature strides {reductions}, need "
            f"{config.stride} and 32 (last)"
        )

    def cbr(cin: int, cout: int, k: int = 3) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
        )

    def head(cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, cout, 1))

    class UpSampler(nn.Module):
        """FPN/IDA-style: stride-32 .. stride-4 features -> one (B, C, h, w) stride-4 map."""

        def __init__(self, channels: list[int]) -> None:
            super().__init__()
            self.lateral = nn.ModuleList(nn.Conv2d(ch, c, 1) for ch in channels)
            self.smooth = nn.ModuleList(cbr(c, c) for _ in channels[:-1])

        def forward(self, feats: list) -> Any:
            f = self.lateral[-1](feats[-1])
            for i in range(len(feats) - 2, -1, -1):
                up = nn.functional.interpolate(f, size=feats[i].shape[-2:], mode="nearest")
                f = self.smooth[i](up + self.lateral[i](feats[i]))
            return f

    class SDTNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.inputs = nn.ModuleList([cbr(3, 3), cbr(3, 3), cbr(p, 3)])
            self.backbone = backbone
            self.levels = [i for i, r in enumerate(reductions) if r >= config.stride]
            chans = [backbone.feature_info.channels()[i] for i in self.levels]
            self.up = UpSampler(chans)
            self.mask_up = UpSampler(chans) if config.variant == "full" else None
            self.mask = nn.Conv2d(c, 1, 1) if config.variant == "full" else None
            self.heatmap = head(p)
            self.subcell = head(2 * p)
            self.offset = head(2 * p)
            self.embedding = head(2) if config.variant != "center" else None
            self.size = head(2) if config.variant == "center" else None
            endpoints = config.variant != "center"
            self.reach = head(2 * p) if endpoints and config.reach_weight > 0 else None
            nn.init.constant_(self.heatmap[-1].bias, -2.19)  # CenterNet's init: p = 0.1

        def forward(self, image, prev_image, prev_hm):
            hm_in = nn.functional.interpolate(prev_hm, size=image.shape[-2:], mode="bilinear")
            x = self.inputs[0](image) + self.inputs[1](prev_image) + self.inputs[2](hm_in)
            feats = self.backbone(x)
            feats = [feats[i] for i in self.levels]
            out_size = (image.shape[-2] // config.stride, image.shape[-1] // config.stride)
            f = _resize(self.up(feats), out_size)
            out = {}
            if self.mask_up is not None:
                out["mask"] = self.mask(_resize(self.mask_up(feats), out_size))
                f = torch.sigmoid(out["mask"]) * f  # eq. 7
            out["heatmap"] = torch.sigmoid(self.heatmap(f)).clamp(1e-4, 1 - 1e-4)
            out["subcell"] = torch.sigmoid(self.subcell(f))
            out["offset"] = self.offset(f)
            if self.embedding is not None:
                out["embedding"] = self.embedding(f)
            if self.size is not None:
                out["size"] = self.size(f)
            if self.reach is not None:
                out["reach"] = self.reach(f)
            return out

    def _resize(f, size):
        if tuple(f.shape[-2:]) == size:
            return f
        return nn.functional.interpolate(f, size=size, mode="bilinear")

    return SDTNet()


def to_input(images: np.ndarray):
    """(B, H, W, 3) or (H, W, 3) uint8 RGB -> (B, 3, H, W) float32 tensor, ImageNet-normalised
    (the backbone's convention, kept for when ImageNet weights are loaded)."""
    import torch

    from afss_utils.students.training import IMAGENET_MEAN, IMAGENET_STD

    x = np.asarray(images)
    x = x[None] if x.ndim == 3 else x
    x = (x.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------- losses
def _gather(maps, index):
    """maps (B, C, h, w), index (B, K) long flat cells -> (B, K, C)."""
    b, c = maps.shape[:2]
    flat = maps.reshape(b, c, -1)
    return flat.gather(2, index[:, None, :].expand(b, c, index.shape[1])).permute(0, 2, 1)


def focal_loss(pred, gt):
    """CenterNet's penalty-reduced focal loss (eq. 9; alpha 2, beta 4), summed over cells and
    divided by the number of cells where ``gt`` is 1 (at least 1). pred, gt: same shape."""
    import torch

    pos = gt.eq(1).to(pred.dtype)
    neg_w = torch.pow(1 - gt, 4) * (1 - pos)
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * pos
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * neg_w
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp_min(1)


def _masked_l1(pred, target, mask):
    """Mean |pred - target| over rows where ``mask`` (B, K) is true; 0 (with a gradient path)
    when none is."""
    m = mask[..., None].to(pred.dtype).expand_as(pred.reshape(*mask.shape, -1))
    diff = (pred - target).abs().reshape(m.shape)
    return (diff * m).sum() / m.sum().clamp_min(1)


def embedding_losses(e_left, e_right, valid, margin: float):
    """Pull (eq. 11) and push (eq. 12) for a batch: e_left, e_right (B, K) embeddings read at the
    ground-truth endpoints, valid (B, K) bool. Each is averaged per frame, then over the frames
    that have at least 1 (pull) or 2 (push) debris; 0 when none has."""
    v = valid.to(e_left.dtype)
    n = v.sum(1)
    centre = (e_left + e_right) / 2
    pull_b = (((e_left - centre) ** 2 + (e_right - centre) ** 2) * v).sum(1) / n.clamp_min(1)
    has1 = (n >= 1).to(e_left.dtype)
    pull = (pull_b * has1).sum() / has1.sum().clamp_min(1)
    pair = v[:, :, None] * v[:, None, :] * (1 - _eye(v.shape[1], v))
    hinge = (margin - (centre[:, :, None] - centre[:, None, :]).abs()).clamp_min(0)
    push_b = (hinge * pair).sum((1, 2)) / (n * (n - 1)).clamp_min(1)
    has2 = (n >= 2).to(e_left.dtype)
    push = (push_b * has2).sum() / has2.sum().clamp_min(1)
    return pull, push


def _eye(k: int, like):
    import torch

    return torch.eye(k, dtype=like.dtype, device=like.device)[None]


def losses(outputs: dict, targets: dict, config: SDTNetConfig) -> dict:
    """The loss terms of a batch (eq. 16) -> dict name -> scalar tensor, and ``total``, their
    weighted sum. ``outputs``: the model's dict; ``targets``: :func:`collate` of
    :func:`targets`. Terms: ``center`` variant ``center, size, subcell, offset``; endpoint
    variants ``heatmap, pull, push, subcell, offset``, and ``mask`` for ``full``."""
    import torch.nn.functional as F

    b, k, p = targets["index"].shape
    valid = targets["valid"]
    out: dict = {}
    hm = focal_loss(outputs["heatmap"], targets["heatmap"].to(outputs["heatmap"].dtype))
    idx = targets["index"]
    sub = [_gather(outputs["subcell"][:, 2 * i : 2 * i + 2], idx[:, :, i]) for i in range(p)]
    off = [_gather(outputs["offset"][:, 2 * i : 2 * i + 2], idx[:, :, i]) for i in range(p)]
    sub_l = _masked_l1(_stack(sub), targets["subcell"], valid)
    off_l = _masked_l1(_stack(off), targets["offset"], valid & targets["offset_valid"])
    if config.variant == "center":
        size = _gather(outputs["size"], idx[:, :, 0])
        out["center"] = hm
        out["size"] = _masked_l1(size, targets["size"], valid)
        out["subcell"], out["offset"] = sub_l, off_l
        weights = {
            "center": config.center_weight,
            "size": config.size_weight,
            "subcell": config.subcell_weight,
            "offset": config.offset_weight,
        }
    else:
        e_l = _gather(outputs["embedding"][:, 0:1], idx[:, :, 0])[..., 0]
        e_r = _gather(outputs["embedding"][:, 1:2], idx[:, :, 1])[..., 0]
        pull, push = embedding_losses(e_l, e_r, valid, config.push_margin)
        out.update(heatmap=hm, pull=pull, push=push, subcell=sub_l, offset=off_l)
        weights = {
            "heatmap": config.heatmap_weight,
            "pull": config.pull_weight,
            "push": config.push_weight,
            "subcell": config.subcell_weight,
            "offset": config.offset_weight,
        }
        if "reach" in outputs:
            where = targets["reach_cells"].repeat_interleave(2, dim=1)  # (B, 4, h, w)
            diff = (outputs["reach"] - targets["reach"]).abs() * where
            out["reach"] = diff.sum() / where.sum().clamp_min(1)
            weights["reach"] = config.reach_weight
        if config.variant == "full":
            out["mask"] = F.binary_cross_entropy_with_logits(  # eq. 8
                outputs["mask"], targets["mask"].to(outputs["mask"].dtype)
            )
            weights["mask"] = config.mask_weight
    out["total"] = sum(weights[name] * out[name] for name in weights)
    return out


def _stack(per_point: list):
    """P tensors (B, K, 2) -> (B, K, P, 2)."""
    import torch

    return torch.stack(per_point, dim=2)


# ---------------------------------------------------------------------------- decoding
@dataclass
class Detection:
    """One decoded debris. ``endpoints`` (2, 2) xy pixels (left, right; the centre variant: its
    box's (x1, y1), (x2, y2)); ``score`` the mean heatmap peak of its points; ``embedding`` (2,)
    (left, right; zeros for the centre variant); ``offset`` (2, 2) pixels: each endpoint's
    displacement to where it was in the previous frame; ``box`` (4,) xyxy pixels; ``track_id``
    set by :func:`associate` (None before)."""

    endpoints: np.ndarray
    score: float
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(2))
    offset: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    box: np.ndarray = field(default_factory=lambda: np.zeros(4))
    track_id: int | None = None


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def heatmap_peaks(heat: np.ndarray, threshold: float, top: int) -> list[tuple[float, int, int]]:
    """(h, w) probabilities -> up to ``top`` (score, row, col), best first: cells that are the
    maximum of their 3 x 3 neighbourhood (CenterNet's max-pool NMS) and above ``threshold``."""
    from scipy.ndimage import maximum_filter

    keep = (heat >= maximum_filter(heat, size=3, mode="constant", cval=-np.inf)) & (
        heat >= threshold
    )
    rows, cols = np.nonzero(keep)
    scores = heat[rows, cols]
    order = np.argsort(-scores, kind="stable")[:top]
    return [(float(scores[i]), int(rows[i]), int(cols[i])) for i in order]


def decode(outputs: dict, config: SDTNetConfig) -> list[list[Detection]]:
    """Model outputs (a batch, tensors or arrays, the :func:`build_model` dict) -> per image
    its detections, best first.

    Endpoint variants: the peaks of each endpoint heatmap (at most ``max_objects``, above
    ``threshold``) at ``(cell + subcell) * 4`` pixels, left and right paired by
    :func:`pair_endpoints` (embedding distance at most ``pair_distance``; a right endpoint may
    not lie more than one stride left of its left one; ``full``: the RoI mask along the
    segment; ``reach_weight`` > 0: the partner vectors, the mean of the two endpoints' misses
    in pixels). Centre variant: each centre peak with its box from the size head.
    """
    hm = _numpy(outputs["heatmap"])
    sub, off = _numpy(outputs["subcell"]), _numpy(outputs["offset"])
    emb = _numpy(outputs["embedding"]) if "embedding" in outputs else None
    size = _numpy(outputs["size"]) if "size" in outputs else None
    mask = 1 / (1 + np.exp(-_numpy(outputs["mask"]))) if "mask" in outputs else None
    reach_all = None  # partner vectors in pixels, read once for the batch
    if "reach" in outputs and config.reach_weight > 0:
        reach_all = _numpy(outputs["reach"]) * config.stride
    s = config.stride
    result = []
    for b in range(hm.shape[0]):
        found = []  # per channel: positions (N, 2), scores (N,), offsets (N, 2), emb (N,)
        for p in range(hm.shape[1]):
            peaks = heatmap_peaks(hm[b, p], config.threshold, config.max_objects)
            r = np.array([q[1] for q in peaks], int)
            c = np.array([q[2] for q in peaks], int)
            xy = np.stack([c + sub[b, 2 * p, r, c], r + sub[b, 2 * p + 1, r, c]], -1) * s
            o = np.stack([off[b, 2 * p, r, c], off[b, 2 * p + 1, r, c]], -1)
            e = emb[b, p, r, c] if emb is not None else np.zeros(len(r))
            scores = np.array([q[0] for q in peaks], float)
            found.append((xy.reshape(-1, 2), scores, o.reshape(-1, 2), e, r, c))
        dets = []
        if config.variant == "center":
            xy, scores, o, _, r, c = found[0]
            for i in range(len(xy)):
                wh = size[b, :, r[i], c[i]] * s
                box = np.concatenate([xy[i] - wh / 2, xy[i] + wh / 2])
                ends, both = box.reshape(2, 2), np.stack([o[i], o[i]])
                dets.append(Detection(ends, float(scores[i]), np.zeros(2), both, box))
        else:
            (lxy, ls, lo, le, _, _), (rxy, rs, ro, re, _, _) = found
            line, gate = None, config.pair_distance
            if mask is not None:
                line, gate = segment_support(mask[b, 0], lxy, rxy, s), config.mask_pair_distance
            reach = None
            if reach_all is not None:
                (_, _, _, _, lr, lc), (_, _, _, _, rr, rc) = found
                rea = reach_all[b]
                to_r = lxy + np.stack([rea[0, lr, lc], rea[1, lr, lc]], -1).reshape(-1, 2)
                to_l = rxy + np.stack([rea[2, rr, rc], rea[3, rr, rc]], -1).reshape(-1, 2)
                reach = (  # (N, M) pixels: how far each partner lies from where it is pointed at
                    np.linalg.norm(to_r[:, None] - rxy[None], axis=-1)
                    + np.linalg.norm(to_l[None] - lxy[:, None], axis=-1)
                ) / 2
            pairs = pair_endpoints(
                le,
                re,
                gate,
                lxy,
                rxy,
                float(s),
                line,
                config.line_weight,
                config.line_min,
                reach,
                config.reach_gate,
            )
            for i, j in pairs:
                ends = np.stack([lxy[i], rxy[j]])
                box = streak_boxes(ends, config.streak_width, config.box_pad)[0]
                score = float(ls[i] + rs[j]) / 2
                e = np.array([le[i], re[j]], float)
                dets.append(Detection(ends, score, e, np.stack([lo[i], ro[j]]), box))
        dets.sort(key=lambda d: -d.score)
        result.append(dets)
    return result


def segment_support(
    mask: np.ndarray, left_xy: np.ndarray, right_xy: np.ndarray, stride: int = STRIDE
) -> np.ndarray:
    """How much a debris mask (h, w) probabilities at ``stride`` covers the segment of each
    (left, right) candidate pair: (N, M), the mean over 7 points evenly inside the segment from
    left ``left_xy`` (N, 2) to right ``right_xy`` (M, 2) pixels, each read at its cell."""
    lx = np.asarray(left_xy, float).reshape(-1, 2)
    rx = np.asarray(right_xy, float).reshape(-1, 2)
    t = np.linspace(0, 1, 9)[1:-1][None, None, :, None]
    pts = lx[:, None, None] * (1 - t) + rx[None, :, None] * t  # (N, M, 7, 2)
    h, w = mask.shape
    cells = np.clip(np.floor(pts / stride).astype(int), 0, [w - 1, h - 1])
    return mask[cells[..., 1], cells[..., 0]].mean(-1).reshape(len(lx), len(rx))


def pair_endpoints(
    lefts: np.ndarray,
    rights: np.ndarray,
    max_distance: float = 0.5,
    left_xy: np.ndarray | None = None,
    right_xy: np.ndarray | None = None,
    slack: float = 4.0,
    line: np.ndarray | None = None,
    line_weight: float = 2.0,
    line_min: float = 0.5,
    reach: np.ndarray | None = None,
    reach_gate: float = 4.0,
) -> np.ndarray:
    """Pair left and right endpoints by their line-source embeddings (eq. 10), one-to-one.

    lefts (N,) or (N, C), rights (M,) or (M, C) embeddings; the cost is their L1 distance,
    minimised over all pairs at once (Hungarian, so two lefts never take the same right), and
    pairs farther than ``max_distance`` are not made. With ``left_xy`` (N, 2) and ``right_xy``
    (M, 2) pixels, a right endpoint more than ``slack`` pixels left of a left one is not its
    partner. With ``line`` (N, M) in [0, 1] (:func:`segment_support`: the debris mask along each
    pair's segment), a pair needs ``line >= line_min`` and costs ``line_weight * (1 - line)``
    more: two close, parallel streaks then pair along their own bodies. With ``reach`` (N, M)
    pixels (how far each partner lies from where the other's partner vector points), a pair
    needs ``reach <= reach_gate`` and costs ``reach / reach_gate`` more. Returns (K, 2) int
    (left index, right index), by left index; none: (0, 2).
    """
    from scipy.optimize import linear_sum_assignment

    el, er = np.asarray(lefts, float), np.asarray(rights, float)
    el, er = (e[:, None] if e.ndim == 1 else e for e in (el, er))
    if not len(el) or not len(er):
        return np.zeros((0, 2), int)
    cost = np.abs(el[:, None, :] - er[None, :, :]).sum(-1)
    allowed = cost <= max_distance
    if line is not None:
        line = np.asarray(line, float).reshape(cost.shape)
        allowed &= line >= line_min
        cost = cost + line_weight * (1 - line)
    if reach is not None:
        reach = np.asarray(reach, float).reshape(cost.shape)
        allowed &= reach <= reach_gate
        cost = cost + reach / reach_gate
    if left_xy is not None and right_xy is not None:
        lx = np.asarray(left_xy, float).reshape(-1, 2)[:, 0]
        rx = np.asarray(right_xy, float).reshape(-1, 2)[:, 0]
        allowed &= rx[None, :] >= lx[:, None] - slack
    rows, cols = linear_sum_assignment(np.where(allowed, cost, 1e9))
    keep = allowed[rows, cols]
    return np.stack([rows[keep], cols[keep]], axis=1).astype(int).reshape(-1, 2)


def associate(
    prev_tracks: Sequence[Detection], detections: Sequence[Detection], radius: float, next_id: int
) -> tuple[list[Detection], int]:
    """Link this frame's detections to the previous frame's tracks (§4.5, eqs. 13-14).

    Each detection's endpoints plus its offsets are where it was a frame before; the cost of a
    (detection, track) pair is the mean distance between those and the track's endpoints (left
    to left, right to right), pixels. Hungarian matching over the pairs within ``radius``; a
    matched detection takes the track's id, an unmatched one the id ``next_id`` (then
    ``next_id + 1``...); tracks left unmatched end. Returns the detections (copies, in their
    order) with ``track_id`` set, and the next free id.
    """
    from scipy.optimize import linear_sum_assignment

    ids: list[int | None] = [None] * len(detections)
    if len(prev_tracks) and len(detections):
        guess = np.stack([d.endpoints + d.offset for d in detections])  # (N, 2, 2)
        prev = np.stack([t.endpoints for t in prev_tracks])  # (M, 2, 2)
        cost = np.linalg.norm(guess[:, None] - prev[None], axis=-1).mean(-1)
        allowed = cost <= radius
        rows, cols = linear_sum_assignment(np.where(allowed, cost, 1e9))
        for i, j in zip(rows, cols, strict=True):
            if allowed[i, j]:
                ids[i] = prev_tracks[j].track_id
    out = []
    for d, tid in zip(detections, ids, strict=True):
        if tid is None:
            tid, next_id = next_id, next_id + 1
        out.append(replace(d, track_id=int(tid)))
    return out, next_id


def associate_lost(
    tracks: Sequence[Detection],
    lost: Sequence[tuple[Detection, int]],
    detections: Sequence[Detection],
    radius: float,
    max_age: int,
    next_id: int,
) -> tuple[list[Detection], list[tuple[Detection, int]], int]:
    """:func:`associate` with a memory: tracks the detector missed wait ``max_age`` frames.

    ``tracks``: the previous frame's detections; ``lost``: (last detection, frames missed
    since) of tracks missed before it. A lost track is matched where its last motion has
    carried it by the previous frame (its endpoints minus ``age`` times its offset, the offset
    being the displacement to the frame before). Returns this frame's detections with ids, the
    new ``lost`` (every track unmatched now, its age + 1, while within ``max_age``) and the next
    free id. ``max_age`` 0 is :func:`associate` (the paper's: a track ends at its first miss).
    """
    waiting = [replace(d, endpoints=d.endpoints - d.offset * age) for d, age in lost]
    matched, next_id = associate([*tracks, *waiting], detections, radius, next_id)
    kept = {d.track_id for d in matched}
    seen = [(d, 0) for d in tracks] + list(lost)
    return matched, [(d, a + 1) for d, a in seen if d.track_id not in kept and a < max_age], next_id


def as_annotations(detections: Sequence[Detection]) -> list[dict]:
    """Detections as the annotations :func:`prev_heatmap` draws (the centre variant from the
    box, the others from the endpoints)."""
    out = []
    for d in detections:
        box = np.asarray(d.box, float)
        out.append(
            {
                "endpoints": np.asarray(d.endpoints, float).reshape(-1).tolist(),
                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                "track_id": d.track_id,
            }
        )
    return out


# ---------------------------------------------------------------------------- data
@dataclass
class Sample:
    """One training pair: ``image`` and ``prev_image`` (H, W, 3) uint8 RGB, and their COCO
    annotations (``endpoints``, ``width``, ``track_id``; ``bbox`` for the centre variant). The
    first frame of a video is paired with itself and no previous annotations."""

    image: np.ndarray
    prev_image: np.ndarray
    annotations: list[dict]
    prev_annotations: list[dict]


def _frame_annotations(fr: DebrisFrame) -> list[dict]:
    return [
        {
            "track_id": int(t),
            "endpoints": e.reshape(-1).tolist(),
            "width": float(w),
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
        }
        for t, e, w, b in zip(fr.track_ids, fr.endpoints, fr.widths, fr.boxes, strict=True)
    ]


def samples_from_frames(frames: Sequence[DebrisFrame]) -> list[Sample]:
    """A rendered video (the simulator's frames, in order) -> one :class:`Sample` per frame,
    images shown through the paper's ZScale as 8-bit RGB (what the dataset's PNGs hold)."""
    images = [np.repeat(zscale(fr.image)[..., None], 3, axis=2) for fr in frames]
    anns = [_frame_annotations(fr) for fr in frames]
    return [
        Sample(images[t], images[max(t - 1, 0)], anns[t], anns[t - 1] if t else [])
        for t in range(len(frames))
    ]


def samples_from_coco(instances: dict, image_dir: str | os.PathLike) -> list[Sample]:
    """A debris COCO instances dict (images with ``video_id``, ``frame_id``) + its image folder
    -> one :class:`Sample` per image, each frame paired with its video's previous frame."""
    from afss_utils.datasets import read_image

    by_image: dict[int, list[dict]] = {im["id"]: [] for im in instances["images"]}
    for a in instances["annotations"]:
        by_image[a["image_id"]].append(a)
    videos: dict[Any, list[dict]] = {}
    for im in instances["images"]:
        videos.setdefault(im["video_id"], []).append(im)
    out = []
    for ims in videos.values():
        ims = sorted(ims, key=lambda im: im["frame_id"])
        pixels = [read_image(Path(image_dir) / im["file_name"]) for im in ims]
        for t, im in enumerate(ims):
            prev = ims[t - 1] if t else None
            out.append(
                Sample(
                    pixels[t],
                    pixels[max(t - 1, 0)],
                    by_image[im["id"]],
                    by_image[prev["id"]] if prev else [],
                )
            )
    return out


# ---------------------------------------------------------------------------- train / track
def _batches(
    samples: Sequence[Sample], config: SDTNetConfig, batch: int, seed: int, device: str
) -> Iterator[tuple]:
    """Endless seeded batches: (image, prev_image, targets) tensors on ``device``. The input
    heatmap is drawn from disturbed previous annotations, as CenterTrack trains: each is lost
    with probability 0.2 and its points jittered by N(0, 1 px), so the network learns not to
    copy ``H_{t-1}``; the offset targets keep the true previous positions."""

    rng = np.random.default_rng(seed)
    while True:
        pick = rng.choice(len(samples), size=batch, replace=len(samples) < batch)
        items, cur, prev = [], [], []
        for i in pick:
            s = samples[int(i)]
            t = targets(s.annotations, s.prev_annotations, s.image.shape[:2], config)
            shaky = []
            for a in s.prev_annotations:
                if rng.random() < 0.2:
                    continue
                e = np.asarray(a["endpoints"], float) + rng.normal(0, 1.0, 4)
                shaky.append({**a, "endpoints": e.tolist()})
            t["prev_heatmap"] = prev_heatmap(shaky, s.image.shape[:2], config)
            items.append(t)
            cur.append(s.image)
            prev.append(s.prev_image)
        tg = {k: v.to(device) for k, v in collate(items).items()}
        yield to_input(np.stack(cur)).to(device), to_input(np.stack(prev)).to(device), tg


def train(
    samples: Sequence[Sample],
    config: SDTNetConfig,
    steps: int,
    batch: int = 4,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    warmup: int | None = None,
    weight_decay: float = 1e-4,
    bn_batches: int = 8,
    precision: str = "auto",
) -> tuple[Any, list[dict[str, float]]]:
    """Train a new SDT-Net on ``samples`` (:func:`samples_from_frames` /
    :func:`samples_from_coco`) for ``steps`` AdamW steps of ``batch`` random samples.

    The project's loop (:func:`afss_utils.students.training.fit`): linear warm-up over
    ``warmup`` steps (default 10 % of the steps) then cosine decay, gradients clipped to norm
    10, torch on this process's cores; seeded (model init and batches), so a run on the same
    thread count repeats exactly. ``precision`` as the other students' (``auto``: the network
    in bf16 autocast on a CPU that has it, ~1.7x faster a step there; the losses in float32).
    Afterwards BatchNorm statistics are recomputed over ``bn_batches`` batches
    (:func:`precise_bn`). Returns the model (eval mode, float32) and one row per step: ``step``
    and every term of :func:`losses` (``total`` included).
    """
    import torch

    from afss_utils.config import resolve_device, seed_everything
    from afss_utils.students.training import as_float32, autocast_dtype, fit, resolve_precision

    if not len(samples):
        raise ValueError("train needs at least one sample")
    if steps < 1 or batch < 1:
        raise ValueError(f"train needs steps >= 1 and batch >= 1, got {steps}, {batch}")
    device = resolve_device(device)
    amp = autocast_dtype(resolve_precision(precision, device, key="debris.sdtnet.precision"))
    seed_everything(seed)
    # channels-last: the layout oneDNN's CPU convolutions run fastest in, bf16 or not
    model = build_model(config).to(device, memory_format=torch.channels_last)
    batches = _batches(samples, config, batch, seed, device)

    def step_losses(item):
        image, prev, tg = item
        with torch.autocast(torch.device(device).type, dtype=amp, enabled=amp is not None):
            out = model(image, prev, tg["prev_heatmap"])
        terms = losses(as_float32(out), tg, config)
        return {**terms, "loss": terms["total"]}

    rows = fit(
        model,
        step_losses,
        batches,
        epochs=steps,
        steps_per_epoch=1,
        lr=lr,
        weight_decay=weight_decay,
        warmup_epochs=max(1, steps // 10) if warmup is None else warmup,
        desc=f"sdtnet {config.variant}",
    )
    history = [
        {"step": r["epoch"], **{k: v for k, v in r.items() if k not in ("epoch", "loss")}}
        for r in rows
    ]
    precise_bn(model, batches, bn_batches)
    model.eval()
    return model, history


def detection_diagnosis(model: Any, config: SDTNetConfig, dataset: Any, tol: float = 6.0) -> dict:
    """Where an endpoint network loses debris on a split: its heatmap peaks or their pairing.

    Every frame of ``dataset`` (a debris split: images with ``video`` and ``frame_id``, COCO
    annotations with ``endpoints``) goes through ``model`` with the *true* previous-frame
    heatmap, so tracking errors do not feed back. Returns counts ``true streaks``, ``left found``
    / ``right found`` (true endpoints with a heatmap peak within ``tol`` pixels, max-norm),
    ``detections`` (what :func:`decode` pairs) and ``correct`` (detections with both endpoints
    within 3 px of a true streak's), and the ratios ``left peak recall``, ``right peak
    recall``, ``detection precision`` and ``detection recall``. A split without debris gives
    zeros. Endpoint variants only (the centre variant has no endpoints to find)."""
    import torch

    if config.variant == "center":
        raise ValueError("detection_diagnosis needs an endpoint variant, not 'center'")
    inst = dataset.instances
    by_image: dict[int, list[dict]] = {}
    for a in inst["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images = sorted(inst["images"], key=lambda i: (i["video"], i["frame_id"]))
    by_key = {(im["video"], im["frame_id"]): im for im in images}
    n = {"true streaks": 0, "left found": 0, "right found": 0, "detections": 0, "correct": 0}
    model.eval()
    for im in images:
        before = by_key.get((im["video"], im["frame_id"] - 1), im)
        image, prev = dataset.load_image(im["id"]), dataset.load_image(before["id"])
        truth = by_image.get(im["id"], [])
        shown = by_image.get(before["id"], []) if before is not im else []
        h_prev = prev_heatmap(shown, image.shape[:2], config)
        with torch.no_grad():
            out = model(to_input(image), to_input(prev), h_prev[None])
        ends = endpoint_pairs(truth)  # (K, 2, 2) left, right
        heat = _numpy(out["heatmap"])
        for channel, key in ((0, "left found"), (1, "right found")):
            peaks = heatmap_peaks(heat[0, channel], config.threshold, config.max_objects)
            at = np.array([[c, r] for _, r, c in peaks], float).reshape(-1, 2) * config.stride
            for e in ends[:, channel]:
                n[key] += bool(len(at)) and bool(np.abs(at - e).max(1).min() <= tol)
        detections = decode(out, config)[0]
        n["true streaks"] += len(ends)
        n["detections"] += len(detections)
        for d in detections:
            err = [
                min(np.abs(d.endpoints - e).max(), np.abs(d.endpoints[::-1] - e).max())
                for e in ends
            ]
            n["correct"] += bool(err) and min(err) <= 3
    gt = max(n["true streaks"], 1)
    return n | {
        "left peak recall": n["left found"] / gt,
        "right peak recall": n["right found"] / gt,
        "detection precision": n["correct"] / max(n["detections"], 1),
        "detection recall": n["correct"] / gt,
    }


def load(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, SDTNetConfig]:
    """A network saved as ``{"config": SDTNetConfig.to_dict(), "state_dict": ...}`` (what
    :func:`afss_utils.debris.stage.train_and_track_sdtnet` writes) -> (model in eval mode on
    ``device``, its config)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SDT-Net weights at {path}: train it first (notebook 05)")
    saved = torch.load(path, map_location=device, weights_only=True)
    config = SDTNetConfig(**saved["config"])
    model = build_model(config)
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), config


def precise_bn(model: Any, batches: Iterator[tuple], count: int) -> None:
    """Recompute every BatchNorm's running mean and variance with the final weights, as the
    plain average over ``count`` training batches (detectron2's "precise BN"). The running
    averages kept during training mix statistics of weights long gone; after a short training
    they are far enough off that the eval-mode network misses what the train-mode one finds.
    ``count`` 0: leave them."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if count <= 0 or not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(count):
            image, prev, tg = next(batches)
            model(image, prev, tg["prev_heatmap"])
    for m, mom in zip(norms, momenta, strict=True):
        m.momentum = mom


def track(
    model: Any, video_frames: Sequence[np.ndarray], config: SDTNetConfig, device: str = "cpu"
) -> np.ndarray:
    """Track one video: (T of (H, W, 3) uint8 RGB frames, in order) -> (N, 7) float MOT rows
    ``frame, id, x, y, w, h, conf`` (frame 1-based, box xywh pixels, ids from 1).

    The first frame is its own previous frame with an empty ``H_{t-1}``; afterwards the previous
    frame's detections are drawn back into ``H_{t-1}`` (:func:`prev_heatmap`, as the training
    targets are drawn) and linked by :func:`associate` within ``config.radius``.
    """
    import torch

    from afss_utils.progress import bar

    model.eval()
    rows: list[list[float]] = []
    tracks: list[Detection] = []
    lost: list[tuple[Detection, int]] = []  # (last detection, frames missed since)
    next_id = 1
    prev_image = None
    with torch.no_grad():
        for t, frame in enumerate(bar(video_frames, desc="sdtnet track", leave=False)):
            cur = to_input(frame).to(device)
            prev = cur if prev_image is None else prev_image
            hm = prev_heatmap(as_annotations(tracks), frame.shape[:2], config)
            out = model(cur, prev, hm[None].to(device))
            dets = decode(out, config)[0]
            tracks, lost, next_id = associate_lost(
                tracks, lost, dets, config.radius, config.max_age, next_id
            )
            for d in tracks:
                x1, y1, x2, y2 = (float(v) for v in d.box)
                rows.append([t + 1, d.track_id, x1, y1, x2 - x1, y2 - y1, d.score])
            prev_image = cur
    return np.asarray(rows, float).reshape(-1, 7)
