"""Shared fixtures: tiny on-disk data that several test modules need."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from afss_utils import coco
from afss_utils.coco import mask_to_xyxy
from afss_utils.teachers.base import Prediction


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    """A COCO folder of 4 RGB 32x32 PNGs, one rectangle spacecraft each, domains a, b, a, b.

    Returns the path of ``annotations.json``; images are in ``images/`` beside it. Image ``i``
    (id i + 1) has its GT mask at rows 4+i..20+i, columns 6..22 (xyxy box [6, 4+i, 22, 20+i]).
    """
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    images, anns = [], []
    for i in range(4):
        mask = np.zeros((32, 32), bool)
        mask[4 + i : 20 + i, 6:22] = True
        pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
        pixels[mask] = 200
        name = f"img_{i:02d}.png"
        Image.fromarray(pixels).save(tmp_path / "images" / name)
        images.append(coco.make_image(i + 1, name, 32, 32, domain="ab"[i % 2]))
        anns.append(coco.make_annotation(i + 1, i + 1, mask=mask))
    return coco.save_json(coco.make_instances(images, anns), tmp_path / "annotations.json")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection raises (the study must run offline): socket connect,
    connect_ex and create_connection, which every HTTP client below urllib/requests goes through.

    Attempts are also recorded and fail the test at its end, so one that the code under test
    catches and swallows (``except Exception``, as "am I online?" checks do) is not missed.
    Yields the list of attempts; a test that provokes some on purpose clears it."""
    import socket

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        target = tuple(a for a in args if not isinstance(a, socket.socket))  # the address first
        attempts.append(repr(target))
        raise AssertionError(f"network access attempted: {target}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts
    assert not attempts, f"network access attempted (and swallowed by the code): {attempts}"


# ---------------------------------------------------------------------------- shared helpers
# Helpers several test modules use; fixtures here so that no test imports another test file.


def _make_shapes(root: Path, n: int = 8, size: int = 64, seed: int = 0) -> Path:
    """A tiny COCO set: ``n`` (size x size) RGB images, one bright filled shape each (ellipse,
    rectangle or triangle) on dark noise, with its exact mask. Returns the annotations path."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        cx, cy = rng.integers(size // 3, 2 * size // 3, 2)
        r = int(rng.integers(size // 6, size // 3))
        kind = i % 3
        if kind == 0:
            cv2.ellipse(mask, (int(cx), int(cy)), (r, r * 2 // 3), 0, 0, 360, 1, -1)
        elif kind == 1:
            cv2.rectangle(
                mask, (int(cx - r), int(cy - r // 2)), (int(cx + r), int(cy + r // 2)), 1, -1
            )
        else:
            pts = np.array([[cx, cy - r], [cx + r, cy + r], [cx - r, cy + r]], np.int32)
            cv2.fillPoly(mask, [pts], 1)
        img[mask.astype(bool)] = rng.integers(150, 255, 3)
        name = f"shape_{i:02d}.png"
        cv2.imwrite(str(root / "images" / name), img[..., ::-1])
        images.append(coco.make_image(i + 1, name, size, size, domain="ab"[i % 2]))
        anns.append(coco.make_annotation(i + 1, i + 1, mask=mask.astype(bool)))
    return coco.save_json(coco.make_instances(images, anns), root / "annotations.json")


@pytest.fixture
def make_shapes():
    """Factory ``make_shapes(root, n=8, size=64, seed=0) -> annotations.json path``: a tiny COCO
    set of bright filled shapes (ellipse, rectangle, triangle) on dark noise, exact masks."""
    return _make_shapes


class _BrightTeacher:
    """Detects the bright pixels of whatever view it is given: box = their tight box."""

    name = "bright"
    top_k = 1

    def __init__(self):
        self.calls = 0

    def predict(self, image, prompt="spacecraft"):
        self.calls += 1
        mask = image.max(axis=2) > 128
        box = mask_to_xyxy(mask)
        if box is None:
            return Prediction.empty(*image.shape[:2])
        return Prediction(box[None], [0.9], mask[None], {"mask_scores": [0.5]})


@pytest.fixture
def bright_teacher_cls() -> type:
    """The class of a weight-free teacher that detects the bright pixels (> 128) of whatever view
    it is given (box = their tight box, score 0.9, mask score 0.5) and counts its ``predict``
    calls in ``calls``; subclass it to change one behaviour."""
    return _BrightTeacher


@pytest.fixture(scope="session")
def tiny_vlm_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-init Grounding DINO, OWLv2 and SAM 2 checkpoints saved with save_pretrained
    (tests/tiny_models.py), built once per session: {"grounding_dino", "owlv2", "sam2"} -> dir."""
    import tiny_models  # tests/ is on sys.path while pytest collects this conftest

    return tiny_models.build_all(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs, no dashboard, loopback only) for the whole test session: each start
    costs ~10 s. Its address is in ``$RAY_ADDRESS``, so subprocesses and notebook kernels that
    call ``afss_utils.cluster.connect()`` join it. Yields the ``ray`` module."""
    from afss_utils import cluster

    ray = cluster.connect(num_cpus=2)
    yield ray
    cluster.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
