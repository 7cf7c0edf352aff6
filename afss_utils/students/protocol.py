"""The interface every student implements (see :mod:`afss_utils.students`)."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from afss_utils.datasets import Dataset

# A low score threshold: AP integrates over the whole precision-recall curve, so cutting
# low-confidence detections would truncate it.
PREDICT_CONF = 0.001


@runtime_checkable
class Student(Protocol):
    """A trainable detector. ``iou_types`` are the COCO metrics its predictions support."""

    name: str
    iou_types: tuple[str, ...]
    epochs: int  # the training length under the paper's fixed-epoch budget
    steps: int  # the training length under the equal-steps budget (see distill.training_epochs)
    train_seconds: float | None

    def steps_per_epoch(self, n_images: int) -> int:
        """Optimiser steps one epoch over ``n_images`` training images takes."""
        ...

    def train(
        self,
        train_instances: dict,
        image_dir: str | os.PathLike,
        out_dir: str | os.PathLike,
        val: tuple[dict, str | os.PathLike] | None = None,
        epochs: int | None = None,
    ) -> Student:
        """Train from scratch on a COCO instances dict whose file names are under ``image_dir``,
        for ``epochs`` (default: the configured ``self.epochs``)."""
        ...

    def predict(self, dataset: Dataset) -> list[dict]:
        """COCO results over the dataset's images, top ``top_k`` per image, original pixels."""
        ...
