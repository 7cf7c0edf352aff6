"""Shared fixtures: tiny on-disk data that several test modules need."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from afss_utils import coco


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
    connect_ex and create_connection, which every HTTP client below urllib/requests goes through."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
