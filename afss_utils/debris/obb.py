"""Oriented boxes (OBB) for thin diagonal streaks: ultralytics' ``obb`` task.

An oriented box is its four corners, ``(4, 2)`` xy pixels in order around the rectangle (a batch
is ``(N, 4, 2)``). A streak from endpoint ``e0`` to ``e1`` of width ``w`` has the corners
``e0 + n, e1 + n, e1 - n, e0 - n`` with ``n`` the unit normal times ``w / 2`` (the simulator's
rectangle, :mod:`afss_utils.debris.simulation`). ultralytics reads one label line per box,
``cls x1 y1 x2 y2 x3 y3 x4 y4`` normalised to [0, 1]; its predictions are turned back into the
axis-aligned hull (COCO ``bbox`` xywh pixels) so the COCO evaluator and the trackers need no
change.
"""

from __future__ import annotations

import cv2
import numpy as np

from afss_utils import coco

__all__ = [
    "annotation_corners",
    "axis_pad",
    "corners_to_xywh",
    "mask_endpoints",
    "mask_to_corners",
    "obb_label_line",
    "streak_corners",
]


def streak_corners(endpoints: np.ndarray, width: np.ndarray, pad: float = 0.0) -> np.ndarray:
    """Corners of streak rectangles.

    endpoints: (N, 4) ``x1 y1 x2 y2`` or (N, 2, 2) xy pixels; width: (N,) pixels; pad: (N,)
    pixels added on every side (length + 2 pad, width + 2 pad); scalars broadcast. Returns
    (N, 4, 2) xy pixels ``e0 + n, e1 + n, e1 - n, e0 - n``. A zero-length streak is taken as
    horizontal.
    """
    ends = np.asarray(endpoints, float).reshape(-1, 2, 2)
    w = np.broadcast_to(np.asarray(width, float), (len(ends),))
    pad = np.broadcast_to(np.asarray(pad, float), (len(ends),))[:, None]
    axis = ends[:, 1] - ends[:, 0]
    length = np.linalg.norm(axis, axis=1, keepdims=True)
    u = np.where(length > 0, axis / np.where(length > 0, length, 1), [1.0, 0.0])
    n = np.stack([-u[:, 1], u[:, 0]], axis=1) * (w[:, None] / 2 + pad)
    e0, e1 = ends[:, 0] - u * pad, ends[:, 1] + u * pad
    return np.stack([e0 + n, e1 + n, e1 - n, e0 - n], axis=1)


def axis_pad(endpoints: np.ndarray, pad: float) -> np.ndarray:
    """(N,) padding along each streak's own axes whose axis-aligned hull grows by ``pad`` on every
    side: ``pad / (|cos theta| + |sin theta|)`` (``pad`` when axis-aligned, ``pad / sqrt 2`` at
    45 degrees). With it the hull of the padded oriented box is exactly the padded xyxy box.
    endpoints: (N, 4) or (N, 2, 2) xy pixels."""
    ends = np.asarray(endpoints, float).reshape(-1, 2, 2)
    axis = ends[:, 1] - ends[:, 0]
    length = np.linalg.norm(axis, axis=1)
    spread = np.abs(axis).sum(axis=1) / np.where(length > 0, length, 1)
    return pad / np.where(length > 0, spread, 1.0)


def obb_label_line(corners: np.ndarray, width: int, height: int, cls: int = 0) -> str:
    """One ultralytics OBB label line: (4, 2) xy pixels of an image ``width`` x ``height`` ->
    ``'cls x1 y1 x2 y2 x3 y3 x4 y4'`` normalised, clipped to [0, 1], 6 decimals."""
    vals = np.clip((np.asarray(corners, float).reshape(4, 2) / [width, height]).ravel(), 0, 1)
    return f"{cls} " + " ".join(f"{v:.6f}" for v in vals)


def corners_to_xywh(corners: np.ndarray) -> np.ndarray:
    """Axis-aligned hull of oriented boxes: (N, 4, 2) (or (N, 8)) xy pixels -> (N, 4) xywh."""
    c = np.asarray(corners, float).reshape(-1, 4, 2)
    lo, hi = c.min(axis=1), c.max(axis=1)
    return np.concatenate([lo, hi - lo], axis=1)


def mask_to_corners(mask: np.ndarray) -> np.ndarray | None:
    """Minimum-area rectangle around a (H, W) bool mask's pixels (each pixel covers a unit
    square) -> (4, 2) xy pixels, or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    pts = np.stack([xs, ys], axis=1).astype(np.float32) + 0.5
    (cx, cy), (w, h), angle = cv2.minAreaRect(pts)
    return cv2.boxPoints(((cx, cy), (w + 1, h + 1), angle)).astype(float)


def mask_endpoints(mask: np.ndarray, width: float = 2.0) -> np.ndarray | None:
    """The two endpoints of the streak a (H, W) bool mask covers -> (2, 2) xy pixels, or None
    for an empty mask.

    The ends of the long axis of the mask's minimum-area rectangle, each moved in by the margin
    the detection threshold adds around a blurred streak ``width`` pixels wide: (short side -
    ``width``) / 2, the same on every side. Measured against the simulator (10 sparse videos,
    145 streaks of the streak teacher): median error 1.0 px per endpoint, 1.5 px without it.
    """
    c = mask_to_corners(mask)
    if c is None:
        return None
    sides = np.linalg.norm(c - np.roll(c, -1, axis=0), axis=1)  # c0c1, c1c2, c2c3, c3c0
    first = 0 if sides[0] >= sides[1] else 1  # a long side starts at corner `first`
    e0 = (c[(first + 1) % 4] + c[(first + 2) % 4]) / 2  # the short sides' midpoints
    e1 = (c[(first + 3) % 4] + c[first]) / 2
    length = float(np.linalg.norm(e1 - e0))
    if length == 0:
        return np.stack([e0, e1])
    inset = min(max(0.0, (sides[first + 1] - width) / 2), length / 2)
    u = (e1 - e0) / length
    return np.stack([e0 + u * inset, e1 - u * inset])


def annotation_corners(ann: dict, height: int, width: int) -> np.ndarray:
    """The oriented box of a COCO annotation -> (4, 2) xy pixels: its ``obb`` corners (8 values,
    from the simulator) when present, else the minimum-area rectangle of its RLE
    ``segmentation`` (pseudo-labels with masks), else its ``bbox`` rectangle."""
    if ann.get("obb") is not None:
        return np.asarray(ann["obb"], float).reshape(4, 2)
    if "segmentation" in ann:
        c = mask_to_corners(coco.rle_to_mask(ann["segmentation"], height, width))
        if c is not None:
            return c
    x, y, w, h = (float(v) for v in ann["bbox"])
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
