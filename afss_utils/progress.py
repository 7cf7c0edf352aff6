"""Progress bars: tqdm's, silent in executed notebooks.

papermill stores a notebook bar as a frozen ``0%`` line (its widget does not survive the run),
so the study runner sets ``TQDM_DISABLE=1`` for its kernels. tqdm honours that variable only in
its console bar and only where the caller leaves ``disable`` out; every bar of the package goes
through :func:`bar`, which honours it everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

OFF_ENV = "TQDM_DISABLE"


def enabled(progress: bool = True) -> bool:
    """``progress`` unless ``$TQDM_DISABLE`` is set to a true value (1, true, yes)."""
    return progress and os.environ.get(OFF_ENV, "").strip().lower() not in ("1", "true", "yes")


def bar(iterable: Iterable | None = None, *, progress: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, switched off by ``progress=False`` or
    ``$TQDM_DISABLE``."""
    return tqdm(iterable, disable=not enabled(progress), **kwargs)
