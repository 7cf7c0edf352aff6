"""Pseudo-labelling: a teacher (+ TTA + fusion) over a dataset -> a COCO results json.

Paper section III-A/B: every image gets the teacher's top detection(s), optionally refined by
test-time augmentation and fusion (:mod:`afss_utils.tta`, :mod:`afss_utils.fusion`).

Files, for ``--out PRED.json``:
- ``PRED.json``: COCO results (``image_id, category_id, bbox`` xywh px, ``score``, RLE
  ``segmentation`` and extra per-detection fields such as ``mask_scores``), images in dataset
  order. Byte-identical to what :func:`afss_utils.coco.save_json` writes for the same list;
  written atomically (temp file + rename);
- ``PRED.empty.json``: ``[{image_id, file_name}]`` of the images with no detection, so they
  are recorded rather than silently missing;
- ``PRED.partial.jsonl``: the resumable cache while a run is in progress. Line 1 is a header
  (teacher, TTA, fusion, prompt, dataset fingerprint), then one line per finished image,
  appended and flushed as it finishes. Memory stays flat in the number of images (one image in
  flight, plus an int offset per finished image). A rerun with the same settings skips the
  cached images and, because both runs write the final json from the same cache lines, gives a
  byte-identical file. A cache written with different settings is an error
  (:class:`CacheMismatchError`, naming what differs); ``restart=True`` (``--restart``) discards
  it. Each cached line carries the sha1 of its image file's bytes: an image whose file changed
  since (e.g. the dataset was re-rendered into the same folder) is labelled again, not resumed.
  ``limit`` is not part of the settings: a run with ``--limit`` resumes a longer run's
  cache and the other way round. The cache is removed once the final json covers the whole
  dataset; a run with ``limit`` below the dataset size keeps it, so a longer run continues.

Single view (no TTA) is the teacher's own output, unfused (the paper's zero-shot baseline); of
the fusion settings only ``top_k`` applies to it, so only ``top_k`` is in its header.

- ``PRED.info.json``: the header above, written with ``PRED.json``: it says whose output the
  file is and from which inputs.

Reuse: ``reuse={OTHER.json: its dataset}`` takes the labels of images another run already made
with the same settings (its ``.info.json`` equal to this run's header but for the dataset, whose
fingerprint must be ``its dataset``'s), e.g. notebook 03 scoring the teacher on the test images
that notebooks 01 and 02 labelled. A source is used only for images with the same id, file and
path here, and only when the image file is not newer than the source; anything else (a missing or
unreadable source, other settings) is labelled as usual. Reused lines enter the resume cache as
labelled ones, so the output is byte-identical to labelling them here.

Nothing of the user's is overwritten by surprise: ``--out`` (and its ``.empty.json`` /
``.partial.jsonl`` / ``.info.json``) may not be an input of the run (the annotations json or an
image), and an existing ``--out`` is replaced only when its ``.info.json`` says this tool made it
from the same inputs (a rerun), or with ``overwrite=True`` (``--overwrite``). Both are checked
before any image is labelled.

Engines: ``engine="serial"`` (default) labels the images one after the other in this process;
``engine="ray"`` labels the images the cache lacks on Ray Data (:mod:`afss_utils.cluster`): an
actor pool of ``cluster.labelling_actors`` actors, each holding the teacher (pickled, or built
once by ``teacher_factory``) and asking for one CPU and, for a CUDA teacher, one GPU. This
process stays the only writer of the cache: it appends each labelled image as it arrives, in
whatever order, once (a retried batch is not appended twice), so ``PRED.json`` is byte-identical
to the serial engine's; an actor killed mid-batch is restarted and its batch rerun. In memory:
the missing images as small ``{image_id, file_name, path}`` dicts, plus the batches in flight.
CLI: ``--engine ray --actors N``. Ray is imported only by that engine.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from afss_utils import coco
from afss_utils.datasets import Dataset, ImageReadError, open_dataset, read_image
from afss_utils.fusion import FusionConfig, fuse
from afss_utils.progress import bar as progress_bar
from afss_utils.teachers.base import Prediction, Teacher, WeightsNotFoundError
from afss_utils.tta import Augmentation, parse_tta, predict_views

if TYPE_CHECKING:
    from afss_utils.cluster import ClusterConfig

CACHE_VERSION = 1
ENGINES = ("serial", "ray")
# images per Ray Data batch: a killed actor reruns at most this many, and the driver's progress
# bar and cache advance in steps of this size
RAY_BATCH_SIZE = 4
# images the serial engine reads and decodes ahead of the teacher, in background threads: enough
# to hide a decode behind a GPU forward pass, few enough that memory does not grow with the data
PREFETCH = 4


class OutputConflictError(ValueError):
    """``--out`` would replace an input of the run or a file that is not a results list."""


class CacheMismatchError(RuntimeError):
    """The resume cache was written with other settings; the message names the file and keys."""


@dataclass
class PseudolabelSummary:
    """What one call did. ``n_images``/``n_empty`` count the output; ``n_resumed`` of them came
    from the cache, ``n_reused`` from another run's file (``reuse``); ``images_per_s`` is over
    the images labelled in this call."""

    n_images: int
    n_empty: int
    seconds: float
    images_per_s: float
    out_path: Path
    empty_path: Path
    n_resumed: int = 0
    n_reused: int = 0


# ----------------------------------------------------------------------------- paths
def _stem(out_path: Path) -> Path:
    return out_path.with_suffix("") if out_path.suffix == ".json" else out_path


def cache_path(out_path: str | os.PathLike) -> Path:
    """``PRED.json`` -> ``PRED.partial.jsonl``."""
    stem = _stem(Path(out_path))
    return stem.with_name(stem.name + ".partial.jsonl")


def info_path(out_path: str | os.PathLike) -> Path:
    """``PRED.json`` -> ``PRED.info.json``."""
    stem = _stem(Path(out_path))
    return stem.with_name(stem.name + ".info.json")


def empty_path(out_path: str | os.PathLike) -> Path:
    """``PRED.json`` -> ``PRED.empty.json``."""
    stem = _stem(Path(out_path))
    return stem.with_name(stem.name + ".empty.json")


def file_sha1(path: Path) -> str:
    """sha1 of a file's bytes; ImageReadError names the file when it cannot be read."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def check_output(
    dataset: Dataset, out_path: Path, overwrite: bool = False, header: dict | None = None
) -> None:
    """Raise OutputConflictError (naming the file) when writing ``out_path`` would destroy
    something: an input of the run, or an existing file that this tool did not make from the same
    inputs (``header``; unless ``overwrite``); OutputConflictError also for an output folder that
    cannot be written."""
    outputs = [out_path, empty_path(out_path), cache_path(out_path), info_path(out_path)]
    inputs = {p.resolve() for p in [dataset.annotation_file] if p is not None}
    inputs |= {dataset.image_path(i).resolve() for i in dataset.image_ids}
    for out in outputs:
        if out.resolve() in inputs:
            raise OutputConflictError(
                f"refusing to write {out}: it is an input of this run (annotations or image); "
                "choose another --out"
            )
    if out_path.is_dir():
        raise OutputConflictError(f"--out {out_path} is a folder; give a .json file name")
    if out_path.exists() and not overwrite:
        _check_ours(out_path, header)
    folder = out_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputConflictError(f"cannot create output folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputConflictError(f"output folder {folder} is not writable")
    # os.access says yes to root on a read-only mount (or /proc): try a file, before any work.
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".afss_write_probe."):
            pass
    except OSError as exc:
        raise OutputConflictError(
            f"output folder {folder} is not writable: {exc.strerror or exc}"
        ) from exc


def _check_ours(out_path: Path, header: dict | None) -> None:
    """OutputConflictError unless ``out_path`` is this tool's output of the inputs ``header``."""
    info = info_path(out_path)
    try:
        found = json.loads(info.read_text())["header"]
    except FileNotFoundError:
        raise OutputConflictError(
            f"refusing to replace {out_path}: it exists and was not written by this tool "
            f"(no {info.name} beside it); choose another --out or pass --overwrite"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise OutputConflictError(
            f"refusing to replace {out_path}: {info} is unreadable ({exc}); pass --overwrite"
        ) from exc
    header = json.loads(json.dumps(header))  # compare as json: tuples as lists
    if found != header:
        keys = sorted(
            k for k in set(found) | set(header or {}) if found.get(k) != (header or {}).get(k)
        )
        raise OutputConflictError(
            f"refusing to replace {out_path}: it holds pseudo-labels made from other inputs "
            f"({', '.join(keys)} differ, see {info.name}); choose another --out or pass --overwrite"
        )


def dataset_fingerprint(dataset: Dataset) -> dict[str, Any]:
    """Name, size and a hash of the ordered (image id, file name) list."""
    digest = hashlib.sha1()
    for image_id in dataset.image_ids:
        digest.update(f"{image_id}\t{dataset.image_info(image_id)['file_name']}\n".encode())
    return {"name": dataset.name, "n_images": len(dataset), "sha1": digest.hexdigest()}


# ----------------------------------------------------------------------------- labelling
def teacher_settings(teacher: Teacher) -> dict[str, Any]:
    """The teacher's name and its plain (json scalar) attributes, minus the device; plus, for a
    teacher with weights (a ``checkpoints()`` method: the VLM teachers), ``checkpoints``: the
    identity of each checkpoint it loaded, so a run resumed with another SAM 2 or detector is a
    :class:`CacheMismatchError`. A weight-free teacher (classical) has no such key."""
    out: dict[str, Any] = {"name": getattr(teacher, "name", type(teacher).__name__)}
    for key, value in sorted(getattr(teacher, "__dict__", {}).items()):
        if key.startswith("_") or key == "device":
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
    checkpoints = getattr(teacher, "checkpoints", None)
    if callable(checkpoints):
        out["checkpoints"] = dict(checkpoints())
    return out


def label_image(
    teacher: Teacher,
    image: np.ndarray,
    augs: list[Augmentation],
    fusion: FusionConfig,
    prompt: str = "spacecraft",
) -> Prediction:
    """One image (H, W, 3) uint8 -> fused Prediction in its pixel frame (boxes xyxy px).

    With only the identity view, the teacher's output (best ``fusion.top_k``), unfused. The TTA
    ablation (:mod:`afss_utils.ablation`) runs the same two steps, so its cells equal these labels.
    """
    return fuse_views(teacher, image, predict_views(teacher, image, augs, prompt), fusion)


def fuse_views(
    teacher: Teacher, image: np.ndarray, views: list[Prediction], fusion: FusionConfig
) -> Prediction:
    """Views already mapped back to ``image``'s (H, W) frame -> one fused Prediction.

    A single view is the teacher's own output (best ``fusion.top_k``), unfused; with
    ``mask_fusion = 'reprompt'`` the teacher's SAM segments the fused boxes.
    """
    if len(views) == 1:
        return views[0].top_k(fusion.top_k)
    reprompt = None
    if fusion.mask_fusion == "reprompt":

        def reprompt(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return teacher.segment_boxes(image, boxes)  # type: ignore[attr-defined]

    if getattr(teacher, "score", "box") != "mask":
        return fuse(views, image.shape[:2], fusion, reprompt=reprompt)
    # A mask-scored teacher (the authors' labels): fuse on the box scores as they do, then the
    # label's score is the SAM mask score of the fused box (re-prompted, or the fused average)
    from afss_utils.teachers.detector_sam2 import as_box_scored, as_mask_scored

    fused = fuse([as_box_scored(v) for v in views], image.shape[:2], fusion, reprompt=reprompt)
    return as_mask_scored(fused)


class _Cache:
    """The append-only ``.partial.jsonl``: header line, then one line per finished image."""

    def __init__(self, path: Path, header: dict[str, Any], restart: bool):
        self.path = path
        self.offsets: dict[int, int] = {}  # image_id -> byte offset of its line
        self.hashes: dict[int, str | None] = {}  # image_id -> sha1 of the image it was made from
        if restart:
            path.unlink(missing_ok=True)
        if path.exists() and path.stat().st_size > 0:
            self._load(json.loads(json.dumps(header)))  # compare as json: tuples as lists
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(self._line({"afss_pseudolabel_cache": CACHE_VERSION, "header": header}))
        self._fh = open(path, "ab")  # closed by close()

    @staticmethod
    def _line(obj: Any) -> bytes:
        return (json.dumps(obj) + "\n").encode()

    def _load(self, header: dict[str, Any]) -> None:
        with open(self.path, "rb") as fh:
            first = fh.readline()
            if not first.endswith(b"\n"):  # killed while writing the header: nothing cached yet
                fh.close()
                self.path.write_bytes(
                    self._line({"afss_pseudolabel_cache": CACHE_VERSION, "header": header})
                )
                return
            try:
                found = json.loads(first)["header"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CacheMismatchError(
                    f"{self.path}: not a pseudo-label cache (bad header); delete it or pass --restart"
                ) from exc
            if found != header:
                keys = sorted(k for k in set(found) | set(header) if found.get(k) != header.get(k))
                raise CacheMismatchError(
                    f"{self.path}: cache written with different settings ({', '.join(keys)}: "
                    + "; ".join(f"{k} was {found.get(k)!r}, now {header.get(k)!r}" for k in keys)
                    + "); delete it or pass --restart (restart=True) to discard it"
                )
            good_end = fh.tell()
            while True:
                offset = fh.tell()
                line = fh.readline()
                if not line:
                    break
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("unterminated")
                    entry = json.loads(line)
                    image_id = int(entry["image_id"])
                except (ValueError, KeyError, TypeError):
                    # A run killed mid-write leaves a torn last line; anything after it is not ours.
                    break
                self.offsets[image_id] = offset
                self.hashes[image_id] = entry.get("sha1")  # lines of old caches have none
                good_end = fh.tell()
        if good_end < self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def append(self, image_id: int, file_name: str, sha1: str, records: list[dict]) -> None:
        offset = self._fh.tell()
        line = {"image_id": image_id, "file_name": file_name, "sha1": sha1, "results": records}
        self._fh.write(self._line(line))
        self._fh.flush()  # survives a killed process (the OS has it); fsync would only add power-loss safety
        self.offsets[image_id] = offset
        self.hashes[image_id] = sha1

    def iter_lines(self, image_ids: Iterable[int]) -> Iterable[dict]:
        with open(self.path, "rb") as fh:
            for image_id in image_ids:
                fh.seek(self.offsets[image_id])
                yield json.loads(fh.readline())

    def close(self) -> None:
        self._fh.close()


def _write_results(lines: Iterable[dict], out_path: Path) -> tuple[int, list[dict]]:
    """Stream records into ``out_path`` atomically, formatted exactly as ``json.dump(list)``.

    Returns (number of records, the empty images as [{image_id, file_name}]).
    """
    n_records, empty = 0, []
    with coco.atomic_writer(out_path) as fh:
        fh.write("[")
        for line in lines:
            if not line["results"]:
                empty.append({"image_id": line["image_id"], "file_name": line["file_name"]})
            for rec in line["results"]:
                fh.write((", " if n_records else "") + json.dumps(rec))
                n_records += 1
        fh.write("]")
    return n_records, empty


def _check_settings(
    teacher: Teacher, augs: Sequence[Augmentation], fusion: FusionConfig, limit: int | None
) -> None:
    """ValueError for a run that could not finish: a negative limit, reprompt without SAM."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if (
        len(augs) > 1
        and fusion.mask_fusion == "reprompt"
        and not callable(getattr(teacher, "segment_boxes", None))
    ):
        raise ValueError(
            f"fusion.mask_fusion = 'reprompt' needs a teacher with segment_boxes(image, boxes); "
            f"{getattr(teacher, 'name', teacher)} has none (use mask_fusion: vote)"
        )


def run_header(
    teacher: Teacher,
    dataset: Dataset,
    augs: Sequence[Augmentation],
    fusion: FusionConfig,
    prompt: str,
) -> dict[str, Any]:
    """Everything a run's output depends on: the resume cache and the sidecar carry it. A single
    view is not fused, so its fusion is only ``top_k`` (:func:`fuse_views`)."""
    single = len(augs) <= 1
    return {
        "teacher": teacher_settings(teacher),
        "tta": [a.name for a in augs],
        "fusion": {"top_k": fusion.top_k} if single else fusion.to_dict(),
        "prompt": prompt,
        "dataset": dataset_fingerprint(dataset),
    }


def _is_cached(cache: _Cache, image_id: int, sha1: str) -> bool:
    """Whether the cache holds ``image_id`` labelled from a file whose bytes had ``sha1``: the
    resume rule of both engines."""
    return image_id in cache.offsets and cache.hashes.get(image_id) == sha1


def _label_missing(
    dataset: Dataset,
    selected: Sequence[int],
    cache: _Cache,
    label: Callable[[np.ndarray], Prediction],
    desc: str,
    progress: bool,
) -> tuple[int, int]:
    """Label every selected image the cache lacks (or holds for a changed file).

    Returns (n_resumed, n_labelled). Each image is appended to the cache as soon as it is done,
    so an interruption loses at most the image in hand.
    """
    # hashing costs a file read: only worth it when there is a cache to check against
    check_hashes = any(i in cache.offsets for i in selected)

    def read(image_id: int) -> tuple[str, np.ndarray | None]:
        """(sha1, decoded image), or (sha1, None) for an image the cache already holds."""
        sha1 = file_sha1(dataset.image_path(image_id)) if check_hashes else ""
        if _is_cached(cache, image_id, sha1):
            return sha1, None
        image = dataset.load_image(image_id)
        return sha1 or file_sha1(dataset.image_path(image_id)), image

    n_resumed, n_labelled = 0, 0
    with progress_bar(total=len(selected), progress=progress, unit="img", desc=desc) as bar:
        for image_id, (sha1, image) in _read_ahead(selected, read, PREFETCH):
            if image is None:
                n_resumed += 1
            else:
                records = label(image).to_results(image_id)
                cache.append(image_id, dataset.image_info(image_id)["file_name"], sha1, records)
                n_labelled += 1
            bar.update(1)
    return n_resumed, n_labelled


def _read_ahead(ids: Sequence[int], read: Callable[[int], Any], ahead: int) -> Iterator[tuple]:
    """``(id, read(id))`` for ``ids`` in order, ``read`` running in two background threads at most
    ``ahead`` images ahead of the consumer. An error of ``read`` (an unreadable image) is raised
    here when its image's turn comes, as if read in order; stopping early cancels the rest."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="afss-read")
    window: collections.deque = collections.deque()
    pending = iter(ids)
    try:
        for image_id in pending:
            window.append((image_id, pool.submit(read, image_id)))
            if len(window) >= ahead:
                break
        while window:
            image_id, future = window.popleft()
            nxt = next(pending, None)
            if nxt is not None:
                window.append((nxt, pool.submit(read, nxt)))
            yield image_id, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- ray engine
class _RayLabeller:
    """Ray Data actor (a callable class): the teacher is built once, then batches are labelled."""

    def __init__(
        self,
        teacher: Teacher | None,
        teacher_factory: Callable[[], Teacher] | None,
        augs: list[Augmentation],
        fusion: FusionConfig,
        prompt: str,
    ):
        # a factory loads a VLM's weights here, once per actor, instead of pickling a model
        self.teacher = teacher_factory() if teacher_factory is not None else teacher
        self.augs, self.fusion, self.prompt = augs, fusion, prompt

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        """Columns ``image_id, file_name, path`` -> ``image_id, file_name, sha1, results, error``.

        ``results`` is the image's COCO results records as a json string (Arrow would otherwise
        infer a schema for the nested RLE dicts). An image that cannot be read gives an ``error``
        row (the message) instead of an exception, so the driver raises ImageReadError as the
        serial engine does, not a Ray wrapper of it.
        """
        out: dict[str, list] = {
            k: [] for k in ("image_id", "file_name", "sha1", "results", "error")
        }
        for image_id, file_name, path in zip(
            batch["image_id"], batch["file_name"], batch["path"], strict=True
        ):
            image_id, path = int(image_id), Path(str(path))
            sha1, results, error = "", "[]", ""
            try:
                image = read_image(path)  # Dataset.load_image, without shipping the dataset
                sha1 = file_sha1(path)
            except ImageReadError as exc:
                error = str(exc)
            else:
                pred = label_image(self.teacher, image, self.augs, self.fusion, self.prompt)
                results = json.dumps(pred.to_results(image_id))
            for key, value in zip(
                out, (image_id, str(file_name), sha1, results, error), strict=True
            ):
                out[key].append(value)
        return out


def _reuse(
    sources: Mapping[str | os.PathLike, Dataset],
    dataset: Dataset,
    selected: Sequence[int],
    header: dict[str, Any],
    cache: _Cache,
) -> int:
    """Append to ``cache`` the selected images that a source labelled with this run's settings
    (module docstring, Reuse); returns how many."""
    wanted = json.loads(json.dumps({k: v for k, v in header.items() if k != "dataset"}))
    todo = {i for i in selected if i not in cache.offsets}
    n = 0
    for src_path, src_data in sources.items():
        src_path = Path(src_path)
        try:
            found = coco.read_json(info_path(src_path))["header"]
            if {k: v for k, v in found.items() if k != "dataset"} != wanted:
                continue
            if found.get("dataset") != dataset_fingerprint(src_data):
                continue
            by_image: dict[int, list[dict]] = {i: [] for i in src_data.image_ids}
            for rec in coco.read_json(src_path):
                by_image[int(rec["image_id"])].append(rec)
            written = src_path.stat().st_mtime
        except (coco.CocoFormatError, OSError, KeyError, TypeError, ValueError):
            continue  # not a usable source: its images are labelled here
        for image_id in src_data.image_ids:
            if image_id not in todo:
                continue
            path = dataset.image_path(image_id)
            same = src_data.image_path(image_id) == path and (
                src_data.image_info(image_id)["file_name"]
                == dataset.image_info(image_id)["file_name"]
            )
            if not same or not path.is_file() or path.stat().st_mtime > written:
                continue
            file_name = dataset.image_info(image_id)["file_name"]
            cache.append(image_id, file_name, file_sha1(path), by_image[image_id])
            todo.discard(image_id)
            n += 1
    return n


def _missing(dataset: Dataset, selected: Sequence[int], cache: _Cache) -> list[int]:
    """The selected image ids the cache lacks or holds for a file that changed since, sorted."""
    return sorted(
        i
        for i in selected
        if i not in cache.offsets or not _is_cached(cache, i, file_sha1(dataset.image_path(i)))
    )


def _ray_rows(
    items: list[dict], labeller: dict[str, Any], config: ClusterConfig, num_gpus: int
) -> Iterator[dict]:
    """Label ``items`` (``[{image_id, file_name, path}]``) on a Ray Data actor pool.

    ``labeller``: the keyword arguments of :class:`_RayLabeller`. Yields its output rows as
    batches finish, in no particular order; closing the generator stops the run.
    """
    import logging

    from afss_utils import cluster as ray_cluster

    ray_cluster.connect(config)  # starts or joins Ray
    import ray.data

    # Ray Data logs a line per execution and a warning about its disabled progress bars: the
    # driver's own bar is the one a notebook should show
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        ds = ray.data.from_items(items)
        ds.context.enable_progress_bars = False  # the dataset's own copy of the DataContext
        ds.context.print_on_execution_start = False
        ds = ds.map_batches(
            _RayLabeller,
            fn_constructor_kwargs=labeller,
            batch_size=RAY_BATCH_SIZE,
            compute=ray.data.ActorPoolStrategy(size=config.labelling_actors),
            # one CPU per actor leaves the rest of a machine to Ray Data's own tasks
            num_cpus=1,
            num_gpus=num_gpus,
            # the actor loads the teacher from the caller's model cache (cluster.worker_env)
            runtime_env={"env_vars": ray_cluster.worker_env()},
            # Ray Data restarts a dead actor (killed, out of memory) and reruns its batch by
            # default (max_restarts and max_task_retries -1); passing them is deprecated
        )
        rows = iter(ds.iter_rows())
        try:
            yield from rows
        finally:
            if hasattr(rows, "close"):  # Ctrl-C or an error: stop the actors now
                rows.close()
    finally:
        logger.setLevel(level)


def _label_missing_ray(
    dataset: Dataset,
    selected: Sequence[int],
    cache: _Cache,
    labeller: dict[str, Any],
    config: ClusterConfig,
    num_gpus: int,
    desc: str,
    progress: bool,
) -> tuple[int, int]:
    """:func:`_label_missing` on Ray Data (:func:`_ray_rows`): returns (n_resumed, n_labelled).

    This process is the cache's only writer: each image is appended as its batch arrives, and
    only once, since Ray runs a batch at least once (a rerun after a killed actor).
    """
    todo = _missing(dataset, selected, cache)
    appended: set[int] = set()
    n_resumed = len(selected) - len(todo)
    with progress_bar(
        total=len(selected), initial=n_resumed, progress=progress, unit="img", desc=desc
    ) as bar:
        if not todo:  # nothing to label: no Ray start-up
            return n_resumed, 0
        items = [
            {
                "image_id": i,
                "file_name": dataset.image_info(i)["file_name"],
                # absolute: a Ray worker need not share this process's working directory
                "path": str(dataset.image_path(i).absolute()),
            }
            for i in todo
        ]
        rows = _ray_rows(items, labeller, config, num_gpus)
        try:
            for row in rows:
                if row["error"]:
                    raise ImageReadError(row["error"])
                image_id = int(row["image_id"])
                if image_id in appended:
                    continue
                records = json.loads(row["results"])
                cache.append(image_id, row["file_name"], row["sha1"], records)
                appended.add(image_id)
                bar.update(1)
        finally:
            rows.close()
    return n_resumed, len(appended)


def _publish(lines: Iterable[dict], header: dict, out_path: Path) -> tuple[list, Path]:
    """Write the sidecar, ``out_path`` and its empty-image list; returns (empty, empty file)."""
    # the claim first: killed between the two, a rerun still knows PRED.json is its own
    coco.save_json({"afss_pseudolabel": CACHE_VERSION, "header": header}, info_path(out_path))
    _, empty = _write_results(lines, out_path)
    return empty, coco.save_json(empty, empty_path(out_path))


def save_labels(
    results: Sequence[dict],
    teacher: Teacher,
    dataset: Dataset,
    out_path: str | os.PathLike,
    tta: str | Sequence[str | Augmentation] | None = (),
    fusion: FusionConfig | None = None,
    prompt: str = "spacecraft",
    overwrite: bool = False,
) -> Path:
    """Publish labels made elsewhere with these settings (the TTA ablation's cell of the params'
    setting) as :func:`pseudolabel` would have written them: ``PRED.json``, its ``.empty.json``
    and the ``.info.json`` header, so a later run can reuse them. ``results`` cover ``dataset``
    (COCO results, any order within an image); returns ``out_path``."""
    fusion = fusion or FusionConfig()
    out_path = Path(out_path)
    header = run_header(teacher, dataset, parse_tta(tta), fusion, prompt)
    check_output(dataset, out_path, overwrite, header)
    by_image: dict[int, list[dict]] = {i: [] for i in dataset.image_ids}
    for rec in results:
        if rec["image_id"] not in by_image:
            raise ValueError(f"{out_path}: image_id {rec['image_id']} is not in {dataset.name}")
        by_image[rec["image_id"]].append(rec)
    info = dataset.image_info
    lines = (
        {"image_id": i, "file_name": info(i)["file_name"], "results": by_image[i]}
        for i in dataset.image_ids
    )
    _publish(lines, header, out_path)
    return out_path


def pseudolabel(
    teacher: Teacher,
    dataset: Dataset,
    out_path: str | os.PathLike,
    tta: str | Sequence[str | Augmentation] | None = (),
    fusion: FusionConfig | None = None,
    prompt: str = "spacecraft",
    limit: int | None = None,
    progress: bool = True,
    restart: bool = False,
    overwrite: bool = False,
    engine: str = "serial",
    cluster: ClusterConfig | Mapping[str, Any] | None = None,
    teacher_factory: Callable[[], Teacher] | None = None,
    reuse: Mapping[str | os.PathLike, Dataset] | None = None,
) -> PseudolabelSummary:
    """Label the first ``limit`` images of ``dataset`` (all when None) into ``out_path``.

    tta: augmentation names (the identity view is always added); fusion: how views merge.
    engine: ``serial`` (this process) or ``ray`` (Ray Data actors; ``cluster``, a ClusterConfig
    or ``params['cluster']``, says where and how many). With ``teacher_factory`` (a zero-argument
    callable, e.g. ``functools.partial(build_teacher, name, **options)``) each Ray actor builds
    its own teacher instead of receiving ``teacher`` pickled; ``teacher`` still names the run
    (its settings are the cache header) and decides whether actors ask for a GPU.
    reuse: ``{results json: the dataset it labelled}`` of other runs whose labels to take where
    their settings match (module docstring).
    Resumes from ``<out>.partial.jsonl`` when it exists with the same settings (module
    docstring). A missing or corrupt image raises ImageReadError naming the file; the cache
    keeps every image finished before it. ``--out`` is checked first (:func:`check_output`).
    """
    start = time.perf_counter()
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    config = _cluster_config(cluster) if engine == "ray" else None  # bad params: before any work
    fusion = fusion or FusionConfig()
    augs = parse_tta(tta)
    _check_settings(teacher, augs, fusion, limit)
    out_path = Path(out_path)
    header = run_header(teacher, dataset, augs, fusion, prompt)
    check_output(dataset, out_path, overwrite, header)
    selected = dataset.image_ids if limit is None else dataset.image_ids[:limit]
    cache = _Cache(cache_path(out_path), header, restart)
    try:
        n_reused = _reuse(reuse, dataset, selected, header, cache) if reuse else 0
        t0 = time.perf_counter()
        desc = f"pseudolabel {header['teacher']['name']}"
        if config is not None:
            n_resumed, n_labelled = _label_missing_ray(
                dataset,
                selected,
                cache,
                {
                    "teacher": None if teacher_factory else teacher,
                    "teacher_factory": teacher_factory,
                    "augs": augs,
                    "fusion": fusion,
                    "prompt": prompt,
                },
                config,
                _gpus_per_actor(teacher),
                desc,
                progress,
            )
        else:
            n_resumed, n_labelled = _label_missing(
                dataset,
                selected,
                cache,
                lambda image: label_image(teacher, image, augs, fusion, prompt),
                desc,
                progress,
            )
        labelled_s = time.perf_counter() - t0
        empty, empty_file = _publish(cache.iter_lines(selected), header, out_path)
    finally:
        cache.close()
    if len(selected) == len(dataset):  # a --limit run keeps it for a longer run to continue from
        cache.path.unlink(missing_ok=True)
    return PseudolabelSummary(
        n_images=len(selected),
        n_empty=len(empty),
        seconds=time.perf_counter() - start,
        images_per_s=n_labelled / labelled_s if labelled_s > 0 and n_labelled else 0.0,
        out_path=out_path,
        empty_path=empty_file,
        n_resumed=n_resumed - n_reused,
        n_reused=n_reused,
    )


def _gpus_per_actor(teacher: Teacher) -> int:
    """1 for a teacher on a CUDA device (``cuda``, ``cuda:N``), else 0."""
    return 1 if str(getattr(teacher, "device", "cpu")).startswith("cuda") else 0


def _cluster_config(cluster: ClusterConfig | Mapping[str, Any] | None) -> ClusterConfig:
    """A ClusterConfig from itself, ``params['cluster']`` or None (the defaults)."""
    from afss_utils.cluster import ClusterConfig  # no Ray import: that happens in connect()

    return cluster if isinstance(cluster, ClusterConfig) else ClusterConfig.from_params(cluster)


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m afss_utils.pseudolabel",
        description="Pseudo-label a dataset with a zero-shot teacher (+TTA +fusion) into a COCO results json. "
        "Resumes an interrupted run with the same settings.",
    )
    p.add_argument("--teacher", help="teacher name (default: params 'teacher')")
    p.add_argument(
        "--dataset",
        required=True,
        help="COCO instances json (images in images/ beside it) or an image folder",
    )
    p.add_argument("--image-dir", help="image folder of a COCO json (default: images/ beside it)")
    p.add_argument("--out", required=True, help="output COCO results json")
    p.add_argument("--params", help="params overlay on params/default.yaml")
    p.add_argument("--device", help="cpu | cuda | cuda:N (default: params 'device')")
    p.add_argument("--limit", type=int, help="label only the first N images")
    p.add_argument(
        "--tta",
        help="augmentations, e.g. 'vflip,hflip'; 'none' for a single view (default: params 'tta')",
    )
    p.add_argument(
        "--fusion",
        choices=("wbf", "nms", "soft_nms"),
        help="fusion method (default: params fusion.method)",
    )
    p.add_argument("--prompt", help="text prompt (default: params 'prompt')")
    p.add_argument(
        "--restart", action="store_true", help="discard a resume cache written with other settings"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out even if it is not a COCO results list",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="serial",
        help="serial: in this process; ray: Ray Data actors (params 'cluster'; default serial)",
    )
    p.add_argument(
        "--actors",
        type=int,
        help="Ray Data labelling actors (default: params cluster.labelling_actors, else 2)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from afss_utils.config import load_params, named_grid, seed_everything
    from afss_utils.teachers import build_teacher

    args = _parser().parse_args(argv)
    try:
        params = load_params(args.params)
        seed_everything(params["seed"])
        name = args.teacher or params["teacher"]
        options = dict(named_grid("teacher_options", params["teacher_options"]).get(name) or {})
        options.update(top_k=params["top_k"], device=args.device or params["device"])
        teacher = build_teacher(name, **options)
        cluster = dict(params.get("cluster") or {})
        if args.actors is not None:
            cluster["labelling_actors"] = args.actors
        fusion_params = dict(params["fusion"], top_k=params["top_k"])
        if args.fusion:
            fusion_params["method"] = args.fusion
        fusion = FusionConfig.from_params(fusion_params)
        tta = parse_tta(params["tta"] if args.tta is None else args.tta)  # fail before any work
        dataset = open_dataset(args.dataset, args.image_dir)
        summary = pseudolabel(
            teacher,
            dataset,
            args.out,
            tta=tta,
            fusion=fusion,
            prompt=args.prompt or params["prompt"],
            limit=args.limit,
            progress=not args.no_progress,
            restart=args.restart,
            overwrite=args.overwrite,
            engine=args.engine,
            cluster=cluster,
            # each actor loads its own teacher (a VLM's weights) instead of unpickling ours
            teacher_factory=functools.partial(build_teacher, name, **options)
            if args.engine == "ray"
            else None,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: the images finished so far are kept in {cache_path(Path(args.out))}; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except (
        CacheMismatchError,
        ImageReadError,
        coco.CocoFormatError,
        FileNotFoundError,
        KeyError,
        ValueError,
        WeightsNotFoundError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{summary.n_images} images ({summary.n_empty} without detection, {summary.n_resumed} resumed) -> "
        f"{summary.out_path} in {summary.seconds:.1f} s ({summary.images_per_s:.1f} img/s); "
        f"empty list: {summary.empty_path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
