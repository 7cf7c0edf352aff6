"""Loading Hugging Face models for the VLM teachers: offline-aware, fast failure, one message.

A weight source is a hub model id (``owner/name``) or a local directory holding a
``save_pretrained`` copy. With ``HF_HUB_OFFLINE`` set (the study's default, see
:func:`afss_utils.config.setup_offline`) hub ids are resolved from the local HF cache only; a
missing model raises :class:`WeightsNotFoundError` at once instead of retrying the network.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils.teachers.base import WeightsNotFoundError

__all__ = [
    "check_sources",
    "checkpoint_identity",
    "enable_tf32",
    "hub_offline",
    "load_model",
    "load_pretrained",
    "resolve_device",
    "resolve_source",
    "to_rgb_pil",
]


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(
        os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _looks_like_hub_id(source: str) -> bool:
    # owner/name with no path syntax; anything else (./x, /x, ~/x, a/b/c) is a directory.
    parts = source.split("/")
    return (
        len(parts) == 2 and all(parts) and not source.startswith((".", "~")) and "\\" not in source
    )


def _missing(teacher: str, key: str, source: str, why: str) -> WeightsNotFoundError:
    if _looks_like_hub_id(source):
        how = (
            f"download it on a connected machine with `hf download {source}` (older hub clients: "
            f"`huggingface-cli download {source}`) into the HF cache (~/.cache/huggingface, or "
            "$HF_HOME) and copy that cache here, or set "
            f"teacher_options.<set>.{teacher}.{key} in params/grids.yaml (<set>: the name your "
            "params give teacher_options) to a local directory holding the model "
            "(save_pretrained layout)"
        )
    else:
        how = (
            "put the model there (save_pretrained layout), or set "
            f"teacher_options.<set>.{teacher}.{key} in params/grids.yaml to a hub id present in "
            "the HF cache"
        )
    return WeightsNotFoundError(f"{teacher}: weights '{source}' not found ({why}); {how}.")


def resolve_source(source: str, teacher: str, key: str) -> tuple[str, bool]:
    """Check a weight source before any loading; returns (source, local_files_only).

    Raises WeightsNotFoundError when ``source`` is a local path that does not exist, or a hub id
    that is not in the HF cache while the hub is offline.
    """
    source = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _missing(teacher, key, source, f"directory {path} has no config.json")
        return str(path), True
    if not _looks_like_hub_id(source):
        raise _missing(teacher, key, source, f"no directory {path}")
    offline = hub_offline()
    if offline:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json")
        if not isinstance(cached, str):
            raise _missing(
                teacher, key, source, "HF_HUB_OFFLINE is set and it is not in the HF cache"
            )
    return source, offline


def check_sources(teacher: str, **sources: str) -> None:
    """Fail fast, before importing transformers (seconds), if any ``key=source`` is missing."""
    for key, source in sources.items():
        resolve_source(source, teacher, key)


def load_pretrained(cls: Any, source: str, teacher: str, key: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(source)`` with offline resolution; failures -> WeightsNotFoundError."""
    source, local_only = resolve_source(source, teacher, key)
    try:
        return cls.from_pretrained(source, local_files_only=local_only, **kwargs)
    except (OSError, ValueError) as exc:
        # transformers reports absent/partial files as OSError (or ValueError for some configs).
        raise _missing(
            teacher, key, source, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc


def load_model(cls: Any, source: str, teacher: str, key: str) -> Any:
    """A model via :func:`load_pretrained`, always in float32: transformers 5 loads a checkpoint
    in its saved dtype (``dtype="auto"``), and a half-precision one then meets the processors'
    float32 inputs (Grounding DINO, SAM 2: a dtype mismatch)."""
    import torch

    return load_pretrained(cls, source, teacher, key, dtype=torch.float32)


def enable_tf32(device: str) -> None:
    """On CUDA, let float32 matmuls and convolutions use TF32 tensor cores (what the authors'
    scripts do for their teachers); on any other device the flags are left as they are."""
    if not str(device).startswith("cuda"):
        return
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def _local_dir(source: str) -> Path | None:
    """The folder a source's files are in: the directory itself, or for a hub id its snapshot
    in the HF cache (None when it is not there)."""
    path = Path(str(source)).expanduser()
    if path.is_dir():
        return path
    if _looks_like_hub_id(str(source)):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(source), "config.json")
        if isinstance(cached, str):
            return Path(cached).parent
    return None


@functools.lru_cache(maxsize=64)
def _file_sha1(path: str, size: int, mtime_ns: int) -> str:
    # keyed by size and mtime too, so a file rewritten in place is hashed again
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha1").hexdigest()


def checkpoint_identity(source: str) -> str:
    """What a checkpoint *is*, whatever folder it sits in: the sha1 over (relative path, size,
    sha1 of the bytes) of every file of the checkpoint folder (config, weights, processor,
    tokenizer; dotfiles and ``*.md`` skipped; symlinks of the HF cache followed). Two copies of
    one checkpoint agree; another checkpoint (SAM 2.1 tiny vs large, a re-save) differs. A hub id
    not in the HF cache gives ``'unresolved:<id>'``. Each file is read once per process (a few
    seconds for SAM 2.1 large) and remembered by path, size and mtime."""
    folder = _local_dir(source)
    if folder is None:
        return f"unresolved:{source}"
    digest = hashlib.sha1()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix != ".md"
    )
    for p in files:
        real = p.resolve()
        st = real.stat()
        rel = p.relative_to(folder).as_posix()
        digest.update(
            f"{rel}\t{st.st_size}\t{_file_sha1(str(real), st.st_size, st.st_mtime_ns)}\n".encode()
        )
    return digest.hexdigest()


def resolve_device(device: str | None) -> str:
    """'auto' / None -> 'cuda' when available else 'cpu'; anything else unchanged."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def to_rgb_pil(image: np.ndarray):
    """(H, W, 3) uint8 RGB array -> PIL image; a clear error for anything else."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return Image.fromarray(image)
