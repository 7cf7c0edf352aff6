"""Pseudo-labeller throughput, peak memory (100 vs 1,000 images) and TTA cost per view.

    python benchmarks/bench_pseudolabel.py [--sizes 100 1000] [--image-size 512 512]
        [--repeats 3] [--views 1 2 4 8] [--tta-images 30] [--teacher classical_threshold] [--write]

1. Throughput and memory: ``afss_utils.pseudolabel.pseudolabel`` end to end (PNG decode, teacher,
   RLE, cache line, final json) on datasets of each size, each run in a fresh subprocess. Memory
   is measured in a separate run under ``tracemalloc`` (peak of traced Python/numpy allocations
   during the call) and as the process's peak RSS above its RSS just before the call
   (``ru_maxrss``, psutil). Target: peak memory flat within 10 % from 100 to 1,000 images.
2. TTA cost: seconds per image for 1, 2, 4 and 8 views (identity + vflip, + hflip, rot180, +
   rot90, rot270, scale0.75, scale1.25) with WBF fusion, in-process on ``--tta-images`` images.

Images: a few distinct images (``afss_utils.synthetic`` renders when present, else noisy
rectangles) referenced cyclically by the dataset's entries, so a 1,000-image dataset costs no
rendering time; files are re-read and re-decoded for every entry. The teacher is
``classical_threshold`` when registered, else a built-in threshold fake. Medians of
``--repeats`` runs. ``--write`` adds (or replaces same-named) rows of
``results/tables/benchmarks.csv`` with columns ``benchmark, setting, value, unit, notes``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from afss_utils.tables import record_benchmarks

CSV_NAME = "results/tables/benchmarks.csv"

ROOT = Path(__file__).resolve().parents[1]
N_DISTINCT = 20
VIEW_SETS = {
    1: [],
    2: ["vflip"],
    4: ["vflip", "hflip", "rot180"],
    8: ["vflip", "hflip", "rot90", "rot180", "rot270", "scale0.75", "scale1.25"],
}


class ThresholdFake:
    """Fallback teacher when classical_threshold is not registered: bright pixels = object."""

    name = "bench_threshold_fake"

    def __init__(self, top_k=1, **_):
        self.top_k = top_k

    def predict(self, image, prompt="spacecraft"):
        from afss_utils.coco import mask_to_xyxy
        from afss_utils.teachers.base import Prediction

        mask = image.max(axis=2) > 128
        box = mask_to_xyxy(mask)
        if box is None:
            return Prediction.empty(*image.shape[:2])
        return Prediction(box[None], [float(image[mask].mean()) / 255], mask[None])


def make_teacher(name: str):
    from afss_utils.teachers import available_teachers, build_teacher

    if name in available_teachers():
        return build_teacher(name, top_k=1)
    return ThresholdFake()


# ----------------------------------------------------------------------------- data
def make_images(folder: Path, size: tuple[int, int]) -> tuple[list[str], str]:
    """Write N_DISTINCT PNGs of (W, H) ``size``; return their names and where they came from."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    try:
        from afss_utils import synthetic

        render, source = synthetic.render_sample, "afss_utils.synthetic (lightbox/sunlamp/earth)"
        domains = synthetic.check_domains(["lightbox", "sunlamp", "earth"])
    except (ImportError, ValueError):
        render, source, domains = None, "noisy rectangles", []
    names = []
    rng = np.random.default_rng(0)
    for i in range(N_DISTINCT):
        if render is not None:
            image = render(i, domains[i % len(domains)], (w, h))[0]
        else:
            image = rng.integers(0, 50, (h, w, 3), dtype=np.uint8)
            x1, y1 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            image[y1 : y1 + h // 3, x1 : x1 + w // 3] = 200
        name = f"img_{i:03d}.png"
        Image.fromarray(image).save(folder / name, compress_level=1)
        names.append(name)
    return names, source


def write_dataset(root: Path, names: list[str], n: int, size: tuple[int, int]) -> Path:
    """A COCO json of ``n`` unlabelled entries cycling over ``names`` (images in root/images)."""
    from afss_utils import coco

    images = [coco.make_image(i + 1, names[i % len(names)], size[0], size[1]) for i in range(n)]
    return coco.save_json(coco.make_instances(images, []), root / f"dataset_{n}.json")


# ----------------------------------------------------------------------------- child
def child(dataset: str, out: str, teacher_name: str, measure: str) -> dict:
    """One pseudolabel run in this (fresh) process; returns its measurements."""
    import resource
    import tracemalloc

    import psutil

    from afss_utils.datasets import open_coco
    from afss_utils.pseudolabel import pseudolabel

    teacher = make_teacher(teacher_name)
    ds = open_coco(dataset, Path(dataset).parent / "images")
    rss_before = psutil.Process().memory_info().rss
    if measure == "memory":
        tracemalloc.start()
    t0 = time.perf_counter()
    summary = pseudolabel(teacher, ds, out, progress=False, restart=True)
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1] if measure == "memory" else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    return {
        "n": summary.n_images,
        "seconds": seconds,
        "images_per_s": summary.n_images / seconds,
        "traced_peak": traced_peak,
        "rss_before": rss_before,
        "maxrss": maxrss,
        "teacher": teacher.name,
    }


def run_child(dataset: Path, out: Path, teacher: str, measure: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        measure,
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--teacher",
        teacher,
    ]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode:
        raise RuntimeError(f"benchmark child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- benches
def bench_scaling(root: Path, names, sizes, image_size, teacher, repeats) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for n in sizes:
        ds = write_dataset(root, names, n, image_size)
        timing = [run_child(ds, root / f"pred_{n}.json", teacher, "time") for _ in range(repeats)]
        memory = [run_child(ds, root / f"pred_{n}.json", teacher, "memory") for _ in range(repeats)]
        out[n] = {
            "images_per_s": statistics.median(r["images_per_s"] for r in timing),
            "traced_peak_mib": statistics.median(r["traced_peak"] for r in memory) / 2**20,
            "rss_growth_mib": statistics.median(r["maxrss"] - r["rss_before"] for r in memory)
            / 2**20,
            "maxrss_mib": statistics.median(r["maxrss"] for r in memory) / 2**20,
            "teacher": timing[0]["teacher"],
        }
        print(
            f"  n={n}: {out[n]['images_per_s']:.1f} img/s, traced peak {out[n]['traced_peak_mib']:.2f} MiB, "
            f"RSS growth {out[n]['rss_growth_mib']:.1f} MiB, peak RSS {out[n]['maxrss_mib']:.0f} MiB",
            flush=True,
        )
    return out


def bench_views(
    root: Path, names, image_size, teacher_name, n_images, repeats, view_sets
) -> dict[int, float]:
    from afss_utils.datasets import open_coco
    from afss_utils.fusion import FusionConfig
    from afss_utils.pseudolabel import pseudolabel

    ds = open_coco(write_dataset(root, names, n_images, image_size), root / "images")
    teacher = make_teacher(teacher_name)
    cfg = FusionConfig(method="wbf")
    pseudolabel(teacher, ds, root / "warm.json", tta=["vflip"], fusion=cfg, limit=2, progress=False)
    out = {}
    for views, augs in view_sets.items():
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            pseudolabel(
                teacher,
                ds,
                root / f"views_{views}_{r}.json",
                tta=augs,
                fusion=cfg,
                progress=False,
                restart=True,
            )
            times.append((time.perf_counter() - t0) / n_images)
        out[views] = statistics.median(times)
        print(f"  {views} view(s): {1000 * out[views]:.1f} ms/image", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="dataset sizes")
    parser.add_argument("--image-size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--views", type=int, nargs="+", default=sorted(VIEW_SETS), choices=sorted(VIEW_SETS)
    )
    parser.add_argument("--tta-images", type=int, default=30)
    parser.add_argument("--teacher", default="classical_threshold")
    parser.add_argument("--write", action="store_true", help=f"update {CSV_NAME}")
    parser.add_argument("--child", choices=("time", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.dataset, args.out, args.teacher, args.child)))
        return 0

    size = (args.image_size[0], args.image_size[1])
    setting = f"{size[0]}x{size[1]}"
    with tempfile.TemporaryDirectory(prefix="bench_pseudolabel_") as tmp:
        root = Path(tmp)
        names, source = make_images(root / "images", size)
        print(f"pseudolabel scaling ({setting}, {source}, median of {args.repeats}):", flush=True)
        scaling = bench_scaling(root, names, args.sizes, size, args.teacher, args.repeats)
        view_sets = {k: v for k, v in VIEW_SETS.items() if k in args.views}
        print(f"TTA cost ({args.tta_images} images):", flush=True)
        views = bench_views(
            root, names, size, args.teacher, args.tta_images, args.repeats, view_sets
        )

    teacher = next(iter(scaling.values()))["teacher"]
    notes = (
        f"teacher {teacher}; median of {args.repeats}; {N_DISTINCT} distinct images ({source}) cycled; "
        f"{os.cpu_count()} CPUs shared, {platform.machine()}"
    )
    lo, hi = min(scaling), max(scaling)
    flat = {k: scaling[hi][k] / scaling[lo][k] - 1 for k in ("traced_peak_mib", "rss_growth_mib")}
    print(
        f"memory change {lo} -> {hi} images: traced peak {100 * flat['traced_peak_mib']:+.1f} %, "
        f"RSS growth {100 * flat['rss_growth_mib']:+.1f} % (target: within 10 %)"
    )
    if args.write:
        rows = []
        for n, r in scaling.items():
            s = f"{setting} n={n}"
            rows += [
                {
                    "benchmark": "pseudolabel_throughput",
                    "setting": s,
                    "value": f"{r['images_per_s']:.1f}",
                    "unit": "images/s",
                    "notes": notes + "; end to end incl. PNG decode, RLE, cache, json",
                },
                {
                    "benchmark": "pseudolabel_peak_traced_memory",
                    "setting": s,
                    "value": f"{r['traced_peak_mib']:.2f}",
                    "unit": "MiB",
                    "notes": notes + "; tracemalloc peak during the call",
                },
                {
                    "benchmark": "pseudolabel_peak_rss_growth",
                    "setting": s,
                    "value": f"{r['rss_growth_mib']:.1f}",
                    "unit": "MiB",
                    "notes": notes + "; ru_maxrss minus RSS before the call",
                },
            ]
        rows.append(
            {
                "benchmark": "pseudolabel_memory_change",
                "setting": f"{setting} n={lo}->{hi}",
                "value": f"{100 * flat['traced_peak_mib']:+.1f}",
                "unit": "%",
                "notes": notes + "; tracemalloc peak; target within 10 %",
            }
        )
        for v, sec in views.items():
            rows.append(
                {
                    "benchmark": "tta_seconds_per_image",
                    "setting": f"{setting} views={v}",
                    "value": f"{sec:.4f}",
                    "unit": "s/image",
                    "notes": notes + f"; WBF; augs {['identity'] + VIEW_SETS[v]}",
                }
            )
        record_benchmarks(rows, ROOT / "results")
        print(f"wrote {CSV_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
