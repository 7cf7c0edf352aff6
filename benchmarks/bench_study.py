"""Study wall time per notebook, for the default and quick params.

Reads the ``manifest.json`` a run wrote (default: the committed ``results/manifest.json``) and, with
``--run PARAMS --out DIR``, first runs the study with those params (e.g. ``params/quick.yaml``).
One run per params file: a full default study takes most of an hour on 2 cores, so its timing is
the committed run's, not a median.

    python benchmarks/bench_study.py --manifest results/manifest.json --label default --write
    python benchmarks/bench_study.py --run params/quick.yaml --out out/quick --label quick --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from afss_utils.run import run_study
from afss_utils.tables import record_benchmarks

ROOT = Path(__file__).resolve().parents[1]


def rows_from_manifest(
    manifest: dict, label: str, notes: str = "", notebooks: list[str] | None = None
) -> list[dict]:
    """One row per notebook plus the total, in seconds. The total is the study's wall time (the
    runner starts 05 and 06 beside 01-04, so the notebooks' own times overlap); a manifest of a
    partial run (``--only``) has none, and its total is the sum of its notebooks. ``notebooks``:
    only those rows and no total (a rerun of one notebook into a study's manifest), each named
    whole or by its number (``05``); a name that matches no notebook is a KeyError."""
    names = list(manifest["notebooks"])
    if notebooks:
        named = {n: [m for m in names if m == n or m.startswith(f"{n}_")] for n in notebooks}
        if unknown := [n for n, found in named.items() if not found]:
            raise KeyError(f"no notebook {', '.join(unknown)} in the manifest: {', '.join(names)}")
        notebooks = [m for m in names if any(m in found for found in named.values())]
    machine = manifest.get("machine", {})
    notes = ", ".join(
        n
        for n in (
            f"{machine.get('cpu_count', '?')} CPUs, one run, git "
            f"{(manifest.get('git', {}).get('sha') or '?')[:8]}",
            notes,
        )
        if n
    )
    rows = []
    for name, entry in manifest["notebooks"].items():
        if notebooks and name not in notebooks:
            continue
        rows.append(
            {
                "benchmark": "study_wall_time",
                "setting": f"{label} {name}",
                "value": round(entry["duration_s"] or 0.0, 1),
                "unit": "s",
                "notes": notes,
            }
        )
    if notebooks:
        return rows
    total = manifest.get("duration_s") if not manifest.get("only") else None
    if total is None:
        total = sum(e["duration_s"] or 0.0 for e in manifest["notebooks"].values())
    rows.append(
        {
            "benchmark": "study_wall_time",
            "setting": f"{label} total",
            "value": round(total, 1),
            "unit": "s",
            "notes": notes,
        }
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="params file to run first")
    ap.add_argument("--out", help="output folder of that run")
    ap.add_argument("--manifest", default=str(ROOT / "results" / "manifest.json"))
    ap.add_argument("--label", default="default")
    ap.add_argument("--notes", default="", help="added to every row, e.g. the load average")
    ap.add_argument("--write", action="store_true", help="update results/tables/benchmarks.csv")
    ap.add_argument(
        "--notebook",
        action="append",
        help="only this notebook's row (repeatable; no total): after rerunning one notebook",
    )
    args = ap.parse_args(argv)
    if args.run:
        manifest = run_study(args.run, args.out)
    else:
        manifest = json.loads(Path(args.manifest).read_text())
    rows = rows_from_manifest(manifest, args.label, args.notes, args.notebook)
    for row in rows:
        print(f"{row['setting']:40s} {row['value']:8.1f} s")
    if args.write:
        record_benchmarks(rows, ROOT / "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
