"""Throughput of the synthetic spacecraft generator (images/s, PNG + COCO json written).

    python benchmarks/bench_synthetic.py [--num-images 100] [--size 512 512] [--repeats 3] [--write]

Runs ``afss_utils.synthetic.generate`` for each domain ``--repeats`` times into a temporary
folder and reports the median images/s per domain and overall. With ``--write`` the rows
are added to (or replace same-named rows in) ``results/tables/benchmarks.csv`` with columns
``benchmark, setting, value, unit, notes``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from afss_utils import synthetic
from afss_utils.tables import record_benchmarks

CSV_NAME = "results/tables/benchmarks.csv"

ROOT = Path(__file__).resolve().parents[1]


def bench(
    domains: list[str],
    num_images: int,
    size: tuple[int, int],
    repeats: int,
    workers: int | None = None,
) -> dict[str, float]:
    """Median images/s per domain and for all domains together ("all")."""
    rates: dict[str, list[float]] = {d: [] for d in domains}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for d in domains:
                t0 = time.perf_counter()
                synthetic.generate(
                    Path(tmp) / f"{d}{r}",
                    [d],
                    num_images,
                    seed=r,
                    size=size,
                    progress=False,
                    workers=workers,
                )
                rates[d].append(num_images / (time.perf_counter() - t0))
    out = {d: statistics.median(v) for d, v in rates.items()}
    # overall = harmonic mean of per-domain rates (same number of images per domain)
    out["all"] = len(domains) / sum(1.0 / out[d] for d in domains)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=100, help="images per domain per run")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--domain", default=",".join(synthetic.DOMAINS))
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: the CPUs, <= 8)"
    )
    parser.add_argument("--write", action="store_true", help=f"update {CSV_NAME}")
    args = parser.parse_args(argv)
    domains = synthetic.check_domains(args.domain)
    size = (args.size[0], args.size[1])
    # this script has a __main__ guard, so worker processes are safe to spawn
    workers = args.workers or max(1, min(len(os.sched_getaffinity(0)), 8))
    rates = bench(domains, args.num_images, size, args.repeats, workers)

    setting = f"{size[0]}x{size[1]}"
    notes = (
        f"median of {args.repeats} runs x {args.num_images} images incl. PNG+json writing and "
        f"process start-up, {workers} worker process(es), {os.cpu_count()} CPUs, "
        f"{platform.machine()}"
    )
    print(f"{'domain':<10} {'images/s':>9}   ({setting}, {notes})")
    for d, v in rates.items():
        print(f"{d:<10} {v:>9.1f}")
    if args.write:
        rows = [
            {
                "benchmark": f"synthetic_generation_{d}",
                "setting": setting,
                "value": f"{v:.1f}",
                "unit": "images/s",
                "notes": notes,
            }
            for d, v in rates.items()
        ]
        record_benchmarks(rows, ROOT / "results")
        print(f"wrote {CSV_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
