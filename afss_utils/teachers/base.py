"""What every teacher returns, the protocol it follows, and the registry by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from afss_utils.coco import result_record
from afss_utils.config import resolve_device


@dataclass
class Prediction:
    """Detections on one image.

    boxes:  (N, 4) float32 xyxy pixels of the image they refer to
    scores: (N,) float32 in [0, 1], the confidence used for ranking and confidence filtering
    masks:  (N, H, W) bool, or None for box-only predictors
    extra:  per-detection arrays of shape (N,), e.g. ``mask_scores`` (SAM's predicted IoU)
    """

    boxes: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.ndim != 3 or len(self.masks) != len(self.boxes):
                raise ValueError(
                    f"masks must be (N, H, W) with N={len(self.boxes)}, got {self.masks.shape}"
                )
        self.extra = {k: np.asarray(v).reshape(-1) for k, v in self.extra.items()}

    @classmethod
    def empty(cls, height: int, width: int, with_masks: bool = True) -> Prediction:
        """No detections; masks (0, H, W) when ``with_masks``."""
        masks = np.zeros((0, height, width), dtype=bool) if with_masks else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), masks)

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, index: np.ndarray | list[int]) -> Prediction:
        """The detections at ``index`` (ints or bool mask), in that order."""
        index = np.asarray(index)
        return Prediction(
            self.boxes[index],
            self.scores[index],
            None if self.masks is None else self.masks[index],
            {k: v[index] for k, v in self.extra.items()},
        )

    def top_k(self, k: int | None) -> Prediction:
        """The ``k`` highest-scoring detections, best first (all of them when k is None)."""
        order = np.argsort(-self.scores, kind="stable")
        return self.select(order if k is None else order[:k])

    def to_results(self, image_id: int) -> list[dict]:
        """COCO results records for this image (extra arrays become per-record fields)."""
        out = []
        for i in range(len(self)):
            mask = None if self.masks is None else self.masks[i]
            extra = {k: float(v[i]) for k, v in self.extra.items()}
            out.append(result_record(image_id, self.boxes[i], float(self.scores[i]), mask, **extra))
        return out


@runtime_checkable
class Teacher(Protocol):
    """A zero-shot labeller: one RGB image and a text prompt -> Prediction (top ``top_k``)."""

    name: str
    top_k: int | None

    def predict(self, image: np.ndarray, prompt: str = "spacecraft") -> Prediction:
        """image: (H, W, 3) uint8 RGB -> Prediction in that image's pixel frame."""
        ...


class WeightsNotFoundError(RuntimeError):
    """A teacher's model weights are not on this machine; the message says where to put them."""


_REGISTRY: dict[str, Callable[..., Teacher]] = {}


def register_teacher(name: str) -> Callable[[Callable[..., Teacher]], Callable[..., Teacher]]:
    """Class decorator: make a teacher constructible by ``build_teacher(name, **kwargs)``."""

    def deco(factory: Callable[..., Teacher]) -> Callable[..., Teacher]:
        _REGISTRY[name] = factory
        return factory

    return deco


def available_teachers() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_teacher(name: str, **kwargs: Any) -> Teacher:
    """Construct a registered teacher; unknown names list the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown teacher '{name}'; known teachers: {', '.join(sorted(_REGISTRY))}")
    if "device" in kwargs:
        kwargs["device"] = resolve_device(kwargs["device"])
    return _REGISTRY[name](**kwargs)


def build_available(
    names: list[str], options: dict[str, dict], top_k: int | None = 1, device: str = "cpu"
) -> tuple[dict[str, Teacher], dict[str, str]]:
    """Build every named teacher that can run here.

    Returns ``(teachers, unavailable)``: teachers by name, and for each one that could not be
    built (missing weights, missing package) the one-line reason, so a study lists what it
    skipped instead of silently dropping it. Unknown names still raise KeyError: a typo is not
    a missing download.
    """
    teachers: dict[str, Teacher] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            teachers[name] = build_teacher(
                name, top_k=top_k, device=device, **options.get(name, {})
            )
        except (WeightsNotFoundError, ImportError) as exc:
            unavailable[name] = str(exc).splitlines()[0]
    return teachers, unavailable


def _load_builtin() -> None:
    # Imported lazily so that `import afss_utils.teachers` does not import torch/transformers.
    import importlib

    for mod in (
        "afss_utils.teachers.classical",
        "afss_utils.teachers.grounded_sam2",
        "afss_utils.teachers.owlv2",
        "afss_utils.debris.teacher",  # the streak teacher lives with the debris stage
    ):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
