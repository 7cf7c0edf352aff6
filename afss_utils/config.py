"""Parameters, seeding and offline set-up.

A study run is decided by params files: ``params/default.yaml`` is the schema and the
defaults; every other file (``quick.yaml``, ``smoke.yaml``, ``paper.yaml`` or a user's own) is
an *overlay* that may only change keys the default defines. Overlays stack left to right
(``paper.yaml paper_smoke.yaml``: the paper's configuration at smoke sizes). A typo in an
overlay is an error naming the key and the file, never a silently ignored setting.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_DIR = REPO_ROOT / "params"
DEFAULT_PARAMS = PARAMS_DIR / "default.yaml"
# The long grids and option tables, selected by name from a params file (tta_grid: paper).
GRIDS_PARAMS = PARAMS_DIR / "grids.yaml"
NAMED_GRIDS = ("tta_grid", "fusion_grid", "teacher_options")


class ParamsError(ValueError):
    """A params file is unreadable, not a mapping, or sets a key the default does not define."""


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read one YAML mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def merge_params(
    base: dict[str, Any], overlay: dict[str, Any], source: str = "<overlay>", _prefix: str = ""
) -> dict[str, Any]:
    """Return ``base`` updated by ``overlay``; nested mappings merge key by key.

    Raises ParamsError for any key of ``overlay`` that ``base`` lacks, or whose value is not of
    the default's type (:func:`check_type`), naming the dotted key and ``source``.
    """
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        dotted = f"{_prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(map(str, base)))
            raise ParamsError(f"unknown params key '{dotted}' in {source} (known keys: {known})")
        if key == "confidence_threshold":  # a number or a rule's name: checked by its parser
            check_threshold(dotted, value, source)
        else:
            check_type(dotted, base[key], value, source)
        if isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = merge_params(base[key], value, source, _prefix=f"{dotted}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def check_type(key: str, default: Any, value: Any, source: str = "<overlay>") -> None:
    """ParamsError unless ``value`` may replace ``default``: same kind (mapping, list, string,
    bool, int; a float default also takes an int). A null default or value takes anything
    (optional settings); YAML's ``yes``/``1`` are not booleans for a bool key."""
    if default is None or value is None:
        return
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        want = "an integer" if type(default) is int else _type_name(default)
        raise ParamsError(
            f"params key '{key}' in {source} must be {want} like the default "
            f"({default!r}), got {value!r}"
        )


def check_threshold(key: str, value: Any, source: str = "<overlay>") -> None:
    """ParamsError unless ``value`` is a theta of eq. 6 (:func:`afss_utils.distill.parse_threshold`)."""
    from afss_utils.distill import parse_threshold

    try:
        parse_threshold(value)
    except ValueError as exc:
        raise ParamsError(f"params key '{key}' in {source}: {exc}") from None


def overlay_files(
    overlay: str | os.PathLike | Sequence[str | os.PathLike] | None,
) -> list[Path]:
    """The overlay files of ``overlay`` (one path, a list applied in order, or None), without
    the default itself (naming it is allowed and means no overlay)."""
    if overlay is None:
        return []
    files = [overlay] if isinstance(overlay, (str, os.PathLike)) else list(overlay)
    return [Path(f) for f in files if Path(f).resolve() != DEFAULT_PARAMS.resolve()]


def load_params(
    overlay: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load ``params/default.yaml``, apply each overlay file in order and then ``extra`` (e.g.
    CLI flags). Every overlay is checked against the default's keys, so a later file cannot
    bring in a key that an earlier one lacks either.
    """
    params = read_yaml(DEFAULT_PARAMS)
    for path in overlay_files(overlay):
        params = merge_params(params, read_yaml(path), source=str(path))
    if extra:
        params = merge_params(params, extra, source="command-line overrides")
    for kind in NAMED_GRIDS:  # a misspelt grid name fails here, before anything runs
        named_grid(kind, params[kind])
    return params


def with_defaults(key: str, value: dict[str, Any] | None = None) -> dict[str, Any]:
    """``params/default.yaml``'s mapping ``key`` updated by ``value`` (nested keys merge; a key
    the default lacks is a ParamsError). A notebook's parameters cell may so name only the
    settings its lesson needs (``yolo = {}``) while the runner still injects the whole mapping."""
    default = read_yaml(DEFAULT_PARAMS)
    if not isinstance(default.get(key), dict):
        raise ParamsError(f"params key '{key}' is not a mapping in {DEFAULT_PARAMS.name}")
    return merge_params(default[key], value or {}, source="the notebook", _prefix=f"{key}.")


def named_grid(kind: str, name: str, grids_file: str | os.PathLike = GRIDS_PARAMS) -> Any:
    """The grid ``name`` of section ``kind`` in ``params/grids.yaml`` (a deep copy).

    ``named_grid("tta_grid", "paper")`` is the default study's list of augmentation sets.
    Raises ParamsError naming the file and the names it defines when ``name`` is not one.
    """
    section = read_yaml(grids_file).get(kind)
    if not isinstance(section, dict):
        raise ParamsError(f"{grids_file}: no section '{kind}' (sections: {', '.join(NAMED_GRIDS)})")
    if name not in section:
        raise ParamsError(
            f"{kind} '{name}' is not defined in {grids_file} (defined: {', '.join(map(str, section))})"
        )
    return copy.deepcopy(section[name])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) for repeatable runs."""
    import numpy as np

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ParamsError(f"params key 'seed' must be an integer, got {seed!r}")

    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # torch is a dependency, but seeding must not be what fails
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def cache_dir() -> Path:
    """Project-local cache (``$AFSS_CACHE`` or ``<repo>/.cache``) for tool config files."""
    return Path(os.environ.get("AFSS_CACHE", REPO_ROOT / ".cache"))


def setup_offline() -> None:
    """Make Hugging Face and ultralytics work with no network; idempotent and cheap.

    - ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` unless the user set
      ``AFSS_ALLOW_DOWNLOAD=1`` (then the hub may be reached, for a connected machine).
    - ultralytics: ``YOLO_OFFLINE=1``, a private ``YOLO_CONFIG_DIR`` holding the fonts its plots
      and dataset checks would otherwise download (``Arial.ttf``), and settings sync off (done
      when ultralytics is first imported through :func:`import_ultralytics`).
    Must run before ultralytics is imported, which is why ``afss_utils`` calls it on import.
    """
    if os.environ.get("AFSS_ALLOW_DOWNLOAD") != "1":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    yolo_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics")))
    try:
        # ultralytics >= 8.3 reads fonts (and settings) from $YOLO_CONFIG_DIR/Ultralytics/;
        # older releases read $YOLO_CONFIG_DIR itself, so both get the copies.
        for font_dir in (yolo_dir, yolo_dir / "Ultralytics"):
            font_dir.mkdir(parents=True, exist_ok=True)
            _install_fonts(font_dir)
    except OSError:
        # A read-only checkout must still import; ultralytics then falls back to its own dir.
        pass


def _install_fonts(yolo_dir: Path) -> None:
    missing = [n for n in ("Arial.ttf", "Arial.Unicode.ttf") if not (yolo_dir / n).exists()]
    if not missing:
        return
    try:
        import matplotlib
    except ImportError:
        return
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in missing:
        shutil.copyfile(font, yolo_dir / name)


def resolve_device(device: str) -> str:
    """``'auto'`` -> ``'cuda'`` when torch sees a CUDA GPU, else ``'cpu'``; other values as given
    (``cpu``, ``cuda``, ``cuda:N``)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_cores() -> int:
    """CPU cores this process may run on: ``$AFSS_THREADS`` inside a study task (a training
    pinned by :mod:`afss_utils.cluster`), else its affinity set where the OS has one."""
    pinned = os.environ.get("AFSS_THREADS", "")
    if pinned.isdigit() and int(pinned) > 0:
        return int(pinned)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with torch on ``n`` CPU threads, ultralytics' ``select_device`` (which
    resets torch's thread count whenever a model is trained or set up to predict) included."""
    import sys

    import torch

    torch_utils = sys.modules.get("ultralytics.utils.torch_utils")
    before = torch.get_num_threads(), getattr(torch_utils, "NUM_THREADS", None)
    torch.set_num_threads(n)
    if torch_utils is not None:
        torch_utils.NUM_THREADS = n
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        if torch_utils is not None:
            torch_utils.NUM_THREADS = before[1]


def import_ultralytics():
    """Import ultralytics with offline settings applied (sync off, no hub checks) and torch
    allowed every CPU core."""
    setup_offline()
    import ultralytics
    from ultralytics.utils import SETTINGS, torch_utils

    if SETTINGS.get("sync", False):
        SETTINGS.update({"sync": False})
    # select_device() sets torch to NUM_THREADS = cpu_count - 1 threads on every train and
    # predict, and training on a CPU also runs the data pipeline in the main process: on a
    # 2-core machine everything ran on one core while the other idled.
    torch_utils.NUM_THREADS = cpu_cores()
    return ultralytics


def quiet_ultralytics(level: int = logging.WARNING) -> None:
    """Keep ultralytics to its warnings and errors: no per-epoch tables, dataset scans, model
    summaries or progress bars (its progress bars also switch off above INFO). Imports
    ultralytics (offline, as :func:`import_ultralytics`); ``level=logging.INFO`` undoes it."""
    import_ultralytics()
    logging.getLogger("ultralytics").setLevel(level)
