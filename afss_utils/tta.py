"""Test-time augmentation with exact inverses (paper section III-B, eqs. 1-3).

Each :class:`Augmentation` maps an image to a *view* (eq. 1, ``I_k = a_k(I)``) and maps what a
teacher predicts on that view back to the original frame (eq. 3, ``a_k^{-1}``):

- boxes: ``(N, 4)`` float xyxy pixels, continuous coordinates where pixel ``(row r, col c)``
  covers ``[c, c+1) x [r, r+1)``; so a box ``[x1, y1, x2, y2)`` flipped horizontally in an image
  of width ``W`` is ``[W-x2, y1, W-x1, y2)`` (not ``W-1-x``);
- masks: ``(N, h, w)`` bool on the view -> ``(N, H, W)`` bool on the original image.

Flips and rotations are exact permutations of pixels. Scaling resizes by ``factor`` (rounded to
whole pixels) and its inverse uses the *actual* view size, so boxes come back exactly (up to
float rounding) and masks up to the nearest-neighbour resampling at their edges (the authors'
scale inverse was a no-op). Photometric augmentations change pixel values only; their inverse
is the identity on boxes and masks.

Names (``get_augmentation``): ``identity, hflip, vflip, rot90, rot180, rot270`` and, with an
optional number, ``scale<f>`` (f required), ``brightness[f]``, ``contrast[f]``, ``gamma[g]``,
``saturation[f]``, ``hue[turns]``, e.g. ``scale0.75``, ``gamma0.7``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from afss_utils.datasets import check_rgb_image
from afss_utils.teachers.base import Prediction, Teacher


class TTAError(ValueError):
    """An unknown augmentation name or a malformed augmentation list."""


Shape = tuple[int, int]  # (H, W)


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _check_image(image: np.ndarray) -> np.ndarray:
    return check_rgb_image(image, TTAError)


class Augmentation(ABC):
    """One view of an image and the way back.

    Subclasses implement the image transform and, for geometric ones, the box point map and the
    mask transform in both directions. ``shape`` arguments are always the *original* image's
    ``(H, W)``.
    """

    name: str

    @abstractmethod
    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> the view, (h, w, 3) uint8."""

    def view_shape(self, shape: Shape) -> Shape:
        """(H, W) of the original -> (h, w) of the view."""
        return shape

    def boxes_to_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        """(N, 4) xyxy pixels on the original -> (N, 4) xyxy pixels on the view."""
        return _as_boxes(boxes).copy()

    def boxes_from_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        """(N, 4) xyxy pixels on the view -> (N, 4) xyxy pixels on the original."""
        return _as_boxes(boxes).copy()

    def masks_to_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        """(N, H, W) bool on the original -> (N, h, w) bool on the view."""
        return np.asarray(masks, dtype=bool).copy()

    def masks_from_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        """(N, h, w) bool on the view -> (N, H, W) bool on the original."""
        return np.asarray(masks, dtype=bool).copy()

    def prediction_from_view(self, pred: Prediction, shape: Shape) -> Prediction:
        """A teacher's Prediction on the view -> the same detections on the original (H, W).

        Boxes are clipped to the image; scores and ``extra`` arrays are kept as they are.
        """
        h, w = self.view_shape(shape)
        if pred.masks is not None and pred.masks.shape[1:] != (h, w):
            raise TTAError(f"{self.name}: masks are {pred.masks.shape[1:]}, the view is {(h, w)}")
        boxes = self.boxes_from_view(pred.boxes, shape)
        height, width = shape
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        masks = None if pred.masks is None else self.masks_from_view(pred.masks, shape)
        return Prediction(
            boxes, pred.scores.copy(), masks, {k: v.copy() for k, v in pred.extra.items()}
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# ------------------------------------------------------------------------------- geometric
class Identity(Augmentation):
    """The original image (always the first view, as in the paper)."""

    name = "identity"

    def apply(self, image: np.ndarray) -> np.ndarray:
        return _check_image(image)


@dataclass(frozen=True, repr=False)
class Flip(Augmentation):
    """Mirror about the vertical axis (``horizontal=True``, x -> W - x) or the horizontal one."""

    horizontal: bool

    @property
    def name(self) -> str:  # type: ignore[override]
        return "hflip" if self.horizontal else "vflip"

    def apply(self, image: np.ndarray) -> np.ndarray:
        image = _check_image(image)
        return np.ascontiguousarray(image[:, ::-1] if self.horizontal else image[::-1])

    def _map(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        # A flip is its own inverse and keeps the frame size.
        b = _as_boxes(boxes)
        height, width = shape
        if self.horizontal:
            return np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1)
        return np.stack([b[:, 0], height - b[:, 3], b[:, 2], height - b[:, 1]], axis=1)

    def boxes_to_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        return self._map(boxes, shape)

    def boxes_from_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        return self._map(boxes, shape)

    def _flip_masks(self, masks: np.ndarray) -> np.ndarray:
        m = np.asarray(masks, dtype=bool)
        return np.ascontiguousarray(m[:, :, ::-1] if self.horizontal else m[:, ::-1, :])

    def masks_to_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        return self._flip_masks(masks)

    def masks_from_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        return self._flip_masks(masks)


def _rotate_points(
    x: np.ndarray, y: np.ndarray, k: int, shape: Shape
) -> tuple[np.ndarray, np.ndarray]:
    """Point map of ``np.rot90(image, k)`` (counter-clockwise) on an image of ``shape`` (H, W)."""
    height, width = shape
    k %= 4
    if k == 0:
        return x, y
    if k == 1:
        return y, width - x
    if k == 2:
        return width - x, height - y
    return height - y, x


@dataclass(frozen=True, repr=False)
class Rotate(Augmentation):
    """Rotate by ``k * 90`` degrees counter-clockwise (``np.rot90``); space has no up."""

    k: int

    def __post_init__(self) -> None:
        if self.k % 4 == 0:
            raise TTAError("Rotate(k) needs k in {1, 2, 3}; use Identity for k = 0")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"rot{90 * (self.k % 4)}"

    def view_shape(self, shape: Shape) -> Shape:
        return (shape[1], shape[0]) if self.k % 2 else shape

    def apply(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(_check_image(image), self.k))

    @staticmethod
    def _boxes(boxes: np.ndarray, k: int, shape: Shape) -> np.ndarray:
        b = _as_boxes(boxes)
        xa, ya = _rotate_points(b[:, 0], b[:, 1], k, shape)
        xb, yb = _rotate_points(b[:, 2], b[:, 3], k, shape)
        return np.stack(
            [np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb), np.maximum(ya, yb)], axis=1
        )

    def boxes_to_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        return self._boxes(boxes, self.k, shape)

    def boxes_from_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        # Undoing k quarter turns is 4 - k more quarter turns, in the view's frame.
        return self._boxes(boxes, 4 - self.k % 4, self.view_shape(shape))

    def masks_to_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(np.asarray(masks, dtype=bool), self.k, axes=(1, 2)))

    def masks_from_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(np.asarray(masks, dtype=bool), -self.k, axes=(1, 2)))


def _resize_masks(masks: np.ndarray, size: Shape) -> np.ndarray:
    """(N, h, w) bool -> (N, H, W) bool by nearest neighbour on pixel centres."""
    masks = np.asarray(masks, dtype=bool)
    height, width = size
    out = np.zeros((len(masks), height, width), dtype=bool)
    for i, m in enumerate(masks):
        # INTER_NEAREST_EXACT samples at pixel centres; plain INTER_NEAREST is shifted by half
        # a pixel, which would make the scale round trip lose a row/column.
        out[i] = (
            cv2.resize(m.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT) > 0
        )
    return out


@dataclass(frozen=True, repr=False)
class Scale(Augmentation):
    """Resize by ``factor`` (view size rounded to whole pixels); the inverse uses the exact ratio."""

    factor: float

    def __post_init__(self) -> None:
        if not (self.factor > 0 and np.isfinite(self.factor)):
            raise TTAError(f"scale factor must be > 0, got {self.factor}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"scale{self.factor:g}"

    def view_shape(self, shape: Shape) -> Shape:
        return (max(1, round(shape[0] * self.factor)), max(1, round(shape[1] * self.factor)))

    def apply(self, image: np.ndarray) -> np.ndarray:
        image = _check_image(image)
        h, w = self.view_shape(image.shape[:2])
        interp = cv2.INTER_AREA if self.factor < 1 else cv2.INTER_LINEAR
        return cv2.resize(image, (w, h), interpolation=interp)

    def _ratios(self, shape: Shape) -> tuple[float, float]:
        h, w = self.view_shape(shape)
        return w / shape[1], h / shape[0]

    def boxes_to_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        sx, sy = self._ratios(shape)
        return _as_boxes(boxes) * np.array([sx, sy, sx, sy])

    def boxes_from_view(self, boxes: np.ndarray, shape: Shape) -> np.ndarray:
        sx, sy = self._ratios(shape)
        return _as_boxes(boxes) / np.array([sx, sy, sx, sy])

    def masks_to_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        return _resize_masks(masks, self.view_shape(shape))

    def masks_from_view(self, masks: np.ndarray, shape: Shape) -> np.ndarray:
        return _resize_masks(masks, shape)


# ------------------------------------------------------------------------------- photometric
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class Photometric(Augmentation):
    """Changes pixel values only: boxes and masks map through unchanged (the base class)."""

    @abstractmethod
    def _transform(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 in [0, 255] -> same, before clipping and rounding."""

    def apply(self, image: np.ndarray) -> np.ndarray:
        image = _check_image(image)
        out = self._transform(image.astype(np.float32))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True, repr=False)
class Brightness(Photometric):
    """Multiply intensities by ``factor`` (space images are mostly dark: > 1 brightens)."""

    factor: float = 1.3

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"brightness{self.factor:g}"

    def _transform(self, image: np.ndarray) -> np.ndarray:
        return image * self.factor


@dataclass(frozen=True, repr=False)
class Contrast(Photometric):
    """Stretch intensities about the image's mean luminance by ``factor``."""

    factor: float = 1.3

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"contrast{self.factor:g}"

    def _transform(self, image: np.ndarray) -> np.ndarray:
        mean = float((image @ _LUMA).mean())
        return mean + (image - mean) * self.factor


@dataclass(frozen=True, repr=False)
class Gamma(Photometric):
    """``255 * (I / 255) ** gamma``; gamma < 1 lifts shadows."""

    gamma: float = 0.7

    def __post_init__(self) -> None:
        if not self.gamma > 0:
            raise TTAError(f"gamma must be > 0, got {self.gamma}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"gamma{self.gamma:g}"

    def _transform(self, image: np.ndarray) -> np.ndarray:
        return 255.0 * (image / 255.0) ** self.gamma


@dataclass(frozen=True, repr=False)
class Saturation(Photometric):
    """Blend each pixel with its luminance: ``gray + (I - gray) * factor``."""

    factor: float = 1.5

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"saturation{self.factor:g}"

    def _transform(self, image: np.ndarray) -> np.ndarray:
        gray = (image @ _LUMA)[..., None]
        return gray + (image - gray) * self.factor


@dataclass(frozen=True, repr=False)
class Hue(Photometric):
    """Rotate hue by ``shift`` turns (0.05 = 18 degrees) in HSV."""

    shift: float = 0.05

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"hue{self.shift:g}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        image = _check_image(image)
        # The _FULL conversions use the whole 0..255 range for hue, so a shift wraps mod 256.
        hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(self.shift * 256)) % 256
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)

    def _transform(self, image: np.ndarray) -> np.ndarray:  # pragma: no cover - apply overrides
        raise NotImplementedError


# ------------------------------------------------------------------------------- registry
_FIXED: dict[str, Callable[[], Augmentation]] = {
    "identity": Identity,
    "hflip": lambda: Flip(horizontal=True),
    "vflip": lambda: Flip(horizontal=False),
    "rot90": lambda: Rotate(1),
    "rot180": lambda: Rotate(2),
    "rot270": lambda: Rotate(3),
}
_PARAMETRIC: dict[str, Callable[..., Augmentation]] = {
    "scale": Scale,
    "brightness": Brightness,
    "contrast": Contrast,
    "gamma": Gamma,
    "saturation": Saturation,
    "hue": Hue,
}
_NAME = re.compile(r"^([a-z]+)(\d+(?:\.\d*)?|\.\d+)?$")


def available_augmentations() -> list[str]:
    """Known names; parametric ones take an optional number suffix (``scale`` requires one)."""
    return list(_FIXED) + [f"{k}<f>" for k in _PARAMETRIC]


def get_augmentation(name: str) -> Augmentation:
    """An augmentation by name, e.g. ``'vflip'``, ``'rot90'``, ``'scale0.75'``, ``'gamma0.7'``."""
    key = str(name).strip().lower()
    if key in _FIXED:
        return _FIXED[key]()
    match = _NAME.match(key)
    if match and match.group(1) in _PARAMETRIC:
        kind, number = match.groups()
        if number is None:
            if kind == "scale":
                raise TTAError("'scale' needs a factor, e.g. 'scale0.75' or 'scale1.25'")
            return _PARAMETRIC[kind]()
        return _PARAMETRIC[kind](float(number))
    raise TTAError(f"unknown augmentation '{name}'; known: {', '.join(available_augmentations())}")


def parse_tta(spec: str | Iterable[str | Augmentation] | None) -> list[Augmentation]:
    """``'vflip,hflip'`` or ``['vflip', 'hflip']`` -> [Identity, vflip, hflip].

    The identity view is always first (the paper includes the original image); ``identity`` /
    ``none`` entries and duplicates (same canonical name) are dropped; ``None`` or ``''`` or
    ``'none'`` means no augmentation, i.e. only the identity view.
    """
    if spec is None:
        items: list[str | Augmentation] = []
    elif isinstance(spec, str):
        items = [s for s in (p.strip() for p in spec.split(",")) if s]
    else:
        items = list(spec)
    augs: list[Augmentation] = [Identity()]
    seen = {"identity"}
    for item in items:
        if isinstance(item, Augmentation):
            aug = item
        elif isinstance(item, str):
            if item.strip().lower() in ("none", "identity"):
                continue
            aug = get_augmentation(item)
        else:
            raise TTAError(f"augmentations are names or Augmentation objects, got {item!r}")
        if aug.name not in seen:
            seen.add(aug.name)
            augs.append(aug)
    return augs


def predict_views(
    teacher: Teacher, image: np.ndarray, augs: list[Augmentation], prompt: str = "spacecraft"
) -> list[Prediction]:
    """Run ``teacher`` on every view of ``image`` (eq. 2) and map each Prediction back (eq. 3).

    image: (H, W, 3) uint8 RGB. Returns one Prediction per augmentation, in ``augs`` order, all
    in the original (H, W) pixel frame. Uses ``teacher.predict_batch(views, prompt)`` when the
    teacher has it (views may differ in size, e.g. rotations of a non-square image).
    """
    image = _check_image(image)
    shape = image.shape[:2]
    views = [aug.apply(image) for aug in augs]
    batch = getattr(teacher, "predict_batch", None)
    if callable(batch):
        preds = list(batch(views, prompt))
    else:
        preds = [teacher.predict(view, prompt) for view in views]
    if len(preds) != len(augs):
        raise TTAError(
            f"teacher {getattr(teacher, 'name', teacher)} returned {len(preds)} predictions for {len(augs)} views"
        )
    return [aug.prediction_from_view(pred, shape) for aug, pred in zip(augs, preds, strict=True)]
