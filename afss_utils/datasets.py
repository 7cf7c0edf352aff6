"""Dataset views: image ids, paths and ground truth over a COCO json and an images folder.

Adapters for the layouts the paper's authors publish (SPEED+, SPARK-2024, TANGO) build the same
:class:`Dataset`, so every later stage sees one shape of data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from afss_utils import coco


class ImageReadError(OSError):
    """An image file is missing or cannot be decoded; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


@dataclass
class Dataset:
    """A COCO instances dict plus the folder its ``file_name`` entries are relative to.

    ``annotations`` may be empty (unlabelled images); ``has_masks`` says whether GT carries
    segmentations, which decides whether mask AP can be reported.
    """

    name: str
    instances: dict
    image_dir: Path
    annotation_file: Path | None = None
    _by_id: dict[int, dict] = field(init=False, repr=False)
    _anns: dict[int, list[dict]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.image_dir = Path(self.image_dir)
        self.instances = coco.validate_instances(self.instances, self.annotation_file or self.name)
        self._by_id = {img["id"]: img for img in self.instances["images"]}
        self._anns = {i: [] for i in self._by_id}
        for ann in self.instances["annotations"]:
            self._anns[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[int]:
        return iter(self.image_ids)

    @property
    def image_ids(self) -> list[int]:
        return list(self._by_id)

    @property
    def has_masks(self) -> bool:
        anns = self.instances["annotations"]
        return bool(anns) and all("segmentation" in a for a in anns)

    def image_info(self, image_id: int) -> dict:
        return self._by_id[image_id]

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self._by_id[image_id]["file_name"]

    def load_image(self, image_id: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB; ImageReadError names the file when it is missing or corrupt."""
        return read_image(self.image_path(image_id))

    def annotations(self, image_id: int) -> list[dict]:
        return self._anns[image_id]

    def subset(self, image_ids: list[int], name: str | None = None) -> Dataset:
        """A view on some images (and their annotations), e.g. one domain of a pooled set."""
        keep = set(image_ids)
        inst = dict(self.instances)
        inst["images"] = [img for img in self.instances["images"] if img["id"] in keep]
        inst["annotations"] = [a for a in self.instances["annotations"] if a["image_id"] in keep]
        return Dataset(name or self.name, inst, self.image_dir, self.annotation_file)


def open_coco(annotation_file: str | os.PathLike, image_dir: str | os.PathLike | None = None,
              name: str | None = None) -> Dataset:
    """A COCO json and its image folder (default: ``images/`` beside the json)."""
    annotation_file = Path(annotation_file)
    image_dir = Path(image_dir) if image_dir is not None else annotation_file.parent / "images"
    return Dataset(name or annotation_file.parent.name, coco.load_instances(annotation_file),
                   image_dir, annotation_file)
