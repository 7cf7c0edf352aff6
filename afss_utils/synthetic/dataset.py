"""Datasets on disk (images/ + COCO ``annotations.json``), rendered in parallel and replaced
atomically, and the command line (``python -m afss_utils.synthetic``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from afss_utils import coco
from afss_utils.datasets import Dataset
from afss_utils.progress import bar as progress_bar
from afss_utils.synthetic.domains import DOMAINS, RENDERER_VERSION, check_domains
from afss_utils.synthetic.models import DETECTION_MODELS, MODELS
from afss_utils.synthetic.scene import _seed_for, render_sample

# ---------------------------------------------------------------------------- dataset
_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
]


def _make_one(job: tuple) -> tuple[dict, dict]:
    """Render one dataset image, write its PNG, return its COCO image and annotation entries."""
    image_id, dname, index, seed, w, h, img_dir, models, balanced, distance = job
    rng = np.random.default_rng(_seed_for(seed, dname, index))
    # balanced: the types take turns image by image through the whole set (ids count across the
    # domains), so the set and each domain hold every type equally often, up to one image
    model = models[(image_id - 1) % len(models)] if balanced else None
    image, mask, meta = render_sample(
        rng, dname, (w, h), model=model, models=models, distance=distance
    )
    file_name = f"{dname}_{index:05d}.png"
    ok, buf = cv2.imencode(".png", image[..., ::-1], _PNG_PARAMS)
    if not ok:  # pragma: no cover
        raise OSError(f"cannot encode {Path(img_dir) / file_name}")
    (Path(img_dir) / file_name).write_bytes(buf.tobytes())
    entry = coco.make_image(image_id, file_name, w, h, domain=dname, **meta)
    return entry, coco.make_annotation(
        image_id, image_id, mask=mask, box_xyxy=coco.mask_to_xyxy(mask)
    )


def _worker_init() -> None:
    cv2.setNumThreads(1)  # the processes are the parallelism; OpenCV threads would oversubscribe


def _spawn_safe() -> bool:
    """Whether worker processes can start: "spawn" re-imports ``__main__`` in each worker, which
    is harmless for ``python -m``, notebooks and ``-c``, but would re-run an unguarded script."""
    main = sys.modules.get("__main__")
    return getattr(main, "__file__", None) is None or getattr(main, "__spec__", None) is not None


def default_workers(num_jobs: int) -> int:
    """Processes for ``num_jobs`` images: 1 for small sets (start-up costs more) or when the
    caller is a plain script (see :func:`_spawn_safe`), else the usable CPUs (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return 1 if num_jobs < 32 or not _spawn_safe() else max(1, min(cpus, 8))


DESCRIPTION = "AFSS procedural synthetic spacecraft (afss_utils.synthetic)"


def generate(
    out_dir: str | Path,
    domains: str | Sequence[str],
    num_images: int,
    seed: int,
    size: tuple[int, int] = (512, 512),
    progress: bool = True,
    workers: int | None = None,
    models: Sequence[str] | None = None,
    overwrite: bool = False,
    balanced: bool = False,
    distance: tuple[float, float] | None = None,
) -> Path:
    """Write ``num_images`` per domain to ``out_dir/images/*.png`` + ``out_dir/annotations.json``.

    COCO instances with one ``spacecraft`` annotation per image (RLE mask, tight xywh box,
    ``area`` = mask pixels); each image entry also carries ``domain`` and the render metadata
    (``model``, ``variant``, ``visible_fraction``, ``truncated``, ``area_fraction``,
    ``earth_fraction``, ``sun_phase_deg``). Images are named ``{domain}_{index:05d}.png`` and
    numbered 1.. in domain order. ``workers`` processes render in parallel (None: see
    :func:`default_workers`); the output is byte-identical for the same seed whatever the
    number of workers. ``models``: the spacecraft types to draw from (default
    :data:`DETECTION_MODELS`, the detection study's three; ``list(MODELS)`` for all types, as
    the type-classification experiment uses); ``balanced``: the types take turns instead of being
    drawn, so the set and each domain hold every type equally often (up to one image);
    ``distance``: the target's (near, far) distance in bounding radii instead of the domain's
    (recorded as ``info.distance``). Returns the annotations path.

    The dataset is rendered into a hidden temporary folder beside ``out_dir`` and moved in place
    at the end, so a killed run never leaves new images beside an old annotations.json. An
    existing ``out_dir`` is replaced only when it is empty or a dataset this function wrote
    (``info.description``); anything else needs ``overwrite=True`` (``--overwrite``).
    """
    domains = check_domains(domains)
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    w, h = int(size[0]), int(size[1])
    if w < 8 or h < 8:
        raise ValueError(f"image size must be at least 8x8, got {w}x{h}")
    out_dir = Path(out_dir)
    _check_replaceable(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o777 & ~coco._umask())  # mkdtemp's 0700 would outlive the move
        _render_into(
            staging, domains, num_images, seed, w, h, progress, workers, models, balanced, distance
        )
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "annotations.json"


def _check_replaceable(out_dir: Path, overwrite: bool) -> None:
    if overwrite or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    try:
        info = coco.read_json(out_dir / "annotations.json").get("info", {})
    except (coco.CocoFormatError, AttributeError):
        info = {}
    if info.get("description") != DESCRIPTION:
        raise FileExistsError(
            f"refusing to replace {out_dir}: it is not a dataset rendered by afss_utils.synthetic "
            "(pass --overwrite to replace it anyway)"
        )


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``; an old ``out_dir`` is moved aside first, then deleted."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    os.rename(out_dir, old / out_dir.name)
    os.rename(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _render_into(
    out_dir: Path,
    domains: list[str],
    num_images: int,
    seed: int,
    w: int,
    h: int,
    progress: bool,
    workers: int | None,
    models: Sequence[str] | None = None,
    balanced: bool = False,
    distance: tuple[float, float] | None = None,
) -> Path:
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    if balanced:
        models = list(models or DETECTION_MODELS)
    jobs = [
        (
            k,
            d,
            i,
            int(seed),
            w,
            h,
            str(img_dir),
            None if models is None else tuple(models),
            balanced,
            distance,
        )
        for k, (d, i) in enumerate(((d, i) for d in domains for i in range(num_images)), 1)
    ]
    workers = default_workers(len(jobs)) if workers is None else max(1, int(workers))
    bar = progress_bar(total=len(jobs), desc="synthetic", progress=progress, unit="img")
    results = []
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(_make_one(job))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch/OpenCV threads exist
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            for res in pool.map(_make_one, jobs, chunksize=4):
                results.append(res)
                bar.update()
    bar.close()
    info = {
        "description": DESCRIPTION,
        "domains": domains,
        "num_images_per_domain": int(num_images),
        "seed": int(seed),
        "size": [w, h],
        "renderer_version": RENDERER_VERSION,
    }
    if models is not None:
        info["models"] = list(models)
    if balanced:
        info["balanced"] = True
    if distance is not None:
        info["distance"] = [float(x) for x in distance]
    instances = coco.make_instances([r[0] for r in results], [r[1] for r in results], info=info)
    return coco.save_json(instances, out_dir / "annotations.json")


def with_type_categories(instances: dict, models: Sequence[str] | None = None) -> dict:
    """A copy of generated ``instances`` with one category per spacecraft type (ids 1.. in
    ``models`` order, default all :data:`MODELS`) and each annotation's ``category_id`` set from
    its image's recorded ``model``: the type-classification view of a synthetic set (detection
    keeps the single ``spacecraft`` category)."""
    models = list(models or MODELS)
    ids = {m: k + 1 for k, m in enumerate(models)}
    images = {img["id"]: img for img in instances["images"]}
    anns = []
    for a in instances["annotations"]:
        model = images[a["image_id"]].get("model")
        if model not in ids:
            raise ValueError(
                f"image {a['image_id']}: model {model!r} is not one of the types {models}"
            )
        anns.append({**a, "category_id": ids[model]})
    cats = [{"id": ids[m], "name": m, "supercategory": "spacecraft"} for m in models]
    return {**instances, "annotations": anns, "categories": cats}


# The type sets keep a close framing, as the report's SPARK crops and as the renderer drew every
# scene before #25 (box p5/p50/p95 6.5 / 31.5 / 89 % of the frame at 320 px; then 9 / 33 / 86 %):
# telling six types apart needs their parts in view, which a 17 px box (the detection sets' 5th
# percentile at 320 px) does not show.
TYPE_DISTANCE = (1.9, 6.0)


def type_split(
    data_dir: str | os.PathLike,
    split: str,
    domains: list[str],
    num_images: int,
    seed: int,
    size: tuple[int, int],
) -> Dataset:
    """The type-classification ``split`` (``train``/``val``/``test``): a synthetic set of
    **all** spacecraft types, balanced (every type equally often in the set and in each domain,
    up to one image), at close range (:data:`TYPE_DISTANCE`),
    ``num_images`` per domain, under ``data_dir/split``, rendered once
    (re-rendered when its recorded settings differ), opened with one category per type."""
    root = Path(data_dir) / split
    ann = root / "annotations.json"
    want = {
        "domains": list(domains),
        "num_images_per_domain": int(num_images),
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "renderer_version": RENDERER_VERSION,
        "models": list(MODELS),
        "balanced": True,
        "distance": list(TYPE_DISTANCE),
    }
    info = coco.read_json(ann).get("info", {}) if ann.is_file() else {}
    if any(info.get(k) != v for k, v in want.items()):
        generate(
            root,
            domains,
            num_images,
            seed,
            size,
            models=list(MODELS),
            balanced=True,
            distance=TYPE_DISTANCE,
        )
    typed = with_type_categories(coco.read_json(ann))
    return Dataset(f"types_{split}", typed, root / "images", ann)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m afss_utils.synthetic",
        description="Render procedural spacecraft images with COCO masks and boxes.",
    )
    parser.add_argument(
        "--domain", required=True, help=f"one or more comma-separated domains: {', '.join(DOMAINS)}"
    )
    parser.add_argument("--num-images", type=int, required=True, help="images per domain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (images/ + annotations.json)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(512, 512))
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel processes (default: 1 for < 32 images, else the CPU count, <= 8)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if it is not a dataset rendered by this tool",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        domains = check_domains(args.domain)
    except ValueError as exc:
        parser.error(str(exc))
    if args.num_images < 0:
        parser.error("--num-images must be >= 0")
    if min(args.size) < 8:
        parser.error("--size must be at least 8 8")
    try:
        path = generate(
            args.out,
            domains,
            args.num_images,
            args.seed,
            tuple(args.size),
            progress=not args.no_progress,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except (FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
