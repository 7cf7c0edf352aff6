"""Result tables: CSV + pipe-Markdown files, and the paper's Tables I-III for reference.

All tables of the study share one long format, one row per (dataset, method, model, task)::

    dataset   spark | sunlamp | lightbox | tango (the paper) or a params ``datasets`` name
    method    zero-shot | TTA+WBF | Oracle | TTA+WBF+CF | TTA+WBF+CF+TR | ...
    model     the teacher or student (GSAM-2, SEEM, OpenSEED, EfficientDet, YOLOv11, ...)
    task      box | mask
    AP AP50 AP75   percent (0-100); NaN where not measurable (the paper's N/A)
    source    'paper (real data)' for the paper's rows, e.g. 'ours (synthetic)' for ours

so our rows and the paper's concatenate (:func:`beside_paper`) and pivot to the paper's wide
shape (:func:`pivot_metrics`). Extra columns (timings, counts) are kept as they are.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

METRICS = ("AP", "AP50", "AP75")
KEY_COLUMNS = ("dataset", "method", "model", "task")
PAPER_SOURCE = "paper (real data)"
NA = math.nan

# Paper dataset ids: SPARK-2024 ("Spark"), SPEED+ Sunlamp ("SLamp"), SPEED+ Lightbox ("LBox"),
# TANGO ("Tango"); the same names as the `datasets` entries of params/paper.yaml.
PAPER_DATASETS = ("spark", "sunlamp", "lightbox", "tango")


def _records(
    rows: Sequence[tuple], method: str | None, model: str | None, tasks: Sequence[str]
) -> list[dict]:
    """Expand compact rows (dataset, [method,] [model,] 3 values per task) into long records."""
    out = []
    for row in rows:
        row = list(row)
        dataset = row.pop(0)
        m = method if method is not None else row.pop(0)
        mdl = model if model is not None else row.pop(0)
        for t, task in enumerate(tasks):
            vals = row[3 * t : 3 * t + 3]
            rec = {"dataset": dataset, "method": m, "model": mdl, "task": task}
            rec.update({k: float(v) for k, v in zip(METRICS, vals, strict=True)})
            rec["source"] = PAPER_SOURCE
            out.append(rec)
    return out


# Table I: zero-shot detection (box) and segmentation (mask) of VLMs on the test sets.
# Columns: dataset, model, box AP/AP50/AP75, mask AP/AP50/AP75.
_TABLE1 = [
    ("spark", "SEEM", 17.7, 49.8, 2.6, NA, NA, NA),
    ("spark", "OpenSEED", 8.5, 28.0, 0.8, NA, NA, NA),
    ("spark", "GSAM-2", 53.3, 97.9, 61.7, NA, NA, NA),
    ("sunlamp", "SEEM", 25.3, 45.4, 23.7, 28.0, 43.6, 31.1),
    ("sunlamp", "OpenSEED", 33.1, 63.3, 32.1, 40.2, 62.8, 45.3),
    ("sunlamp", "GSAM-2", 73.9, 97.9, 92.1, 72.5, 94.7, 85.0),
    ("lightbox", "SEEM", 11.4, 19.6, 11.3, 37.1, 52.6, 41.8),
    ("lightbox", "OpenSEED", 35.0, 59.3, 36.9, 37.1, 54.8, 41.6),
    ("lightbox", "GSAM-2", 65.8, 91.4, 74.0, 66.2, 83.9, 73.5),
    ("tango", "SEEM", 25.7, 60.5, 7.7, 41.4, 69.7, 41.5),
    ("tango", "OpenSEED", 23.8, 87.7, 0.4, 62.2, 91.6, 77.9),
    ("tango", "GSAM-2", 58.2, 91.8, 75.7, 58.2, 85.9, 69.0),
]

# Table II: Grounded SAM-2 with TTA (vertical flip) and WBF.
_TABLE2 = [
    ("spark", 54.4, 98.0, 64.0, NA, NA, NA),
    ("sunlamp", 74.6, 98.9, 93.7, 73.2, 95.8, 86.3),
    ("lightbox", 66.9, 91.7, 75.6, 66.8, 85.0, 73.8),
    ("tango", 58.5, 92.0, 76.3, 58.7, 86.4, 69.6),
]

# Table III: Oracle and distillation; EfficientDet box, YOLOv11 box, YOLOv11 mask.
_TABLE3 = [
    ("spark", "Oracle", 98.7, 99.0, 99.0, 99.2, 99.5, 99.5, NA, NA, NA),
    ("spark", "TTA+WBF", 65.0, 98.9, 78.9, 68.9, 99.5, 89.4, NA, NA, NA),
    ("spark", "TTA+WBF+CF", 66.8, 98.9, 80.4, 70.8, 99.5, 97.4, NA, NA, NA),
    ("spark", "TTA+WBF+CF+TR", 68.7, 98.9, 80.5, 76.4, 99.5, 98.2, NA, NA, NA),
    ("sunlamp", "Oracle", 81.6, 99.0, 97.8, 85.0, 99.5, 98.8, 81.5, 94.3, 94.1),
    ("sunlamp", "TTA+WBF", 75.4, 99.0, 94.9, 74.2, 95.4, 92.0, 73.0, 94.4, 91.0),
    ("sunlamp", "TTA+WBF+CF", 75.0, 99.0, 94.7, 74.6, 95.3, 91.9, 73.0, 94.8, 91.6),
    ("sunlamp", "TTA+WBF+CF+TR", 74.9, 99.0, 94.7, 75.0, 95.3, 92.6, 74.0, 94.3, 91.0),
    ("lightbox", "Oracle", 84.7, 99.0, 97.6, 80.3, 99.4, 93.4, 82.3, 99.5, 95.7),
    ("lightbox", "TTA+WBF", 66.3, 94.9, 76.0, 69.1, 96.4, 79.3, 61.6, 91.1, 72.6),
    ("lightbox", "TTA+WBF+CF", 66.4, 97.0, 76.8, 69.6, 96.5, 80.1, 62.5, 92.1, 72.6),
    ("lightbox", "TTA+WBF+CF+TR", 68.2, 97.2, 79.1, 71.0, 96.8, 81.6, 63.5, 93.6, 73.7),
    ("tango", "Oracle", 87.4, 94.8, 93.0, 92.1, 99.4, 97.7, 79.1, 99.1, 96.2),
    ("tango", "TTA+WBF", 66.0, 92.2, 87.0, 85.0, 93.5, 93.1, 67.0, 93.4, 84.1),
    ("tango", "TTA+WBF+CF", 66.2, 92.6, 89.0, 86.4, 94.9, 93.7, 69.7, 94.5, 87.1),
    ("tango", "TTA+WBF+CF+TR", 70.6, 92.1, 90.4, 86.5, 95.6, 93.8, 70.0, 94.7, 86.9),
]


def _table3_records() -> list[dict]:
    out = []
    for row in _TABLE3:
        dataset, method, vals = row[0], row[1], row[2:]
        for k, (model, task) in enumerate(
            [("EfficientDet", "box"), ("YOLOv11", "box"), ("YOLOv11", "mask")]
        ):
            out += _records([(dataset, *vals[3 * k : 3 * k + 3])], method, model, [task])
    return out


#: Table I of the paper as long records (see the module docstring for the columns).
PAPER_TABLE1: list[dict] = _records(
    [(d, "zero-shot", *r) for d, *r in _TABLE1], None, None, ["box", "mask"]
)
#: Table II of the paper (Grounded SAM-2 + vflip TTA + WBF) as long records.
PAPER_TABLE2: list[dict] = _records(_TABLE2, "TTA+WBF", "GSAM-2", ["box", "mask"])
#: Table III of the paper (Oracle and distilled students) as long records.
PAPER_TABLE3: list[dict] = _table3_records()

_PAPER = {1: PAPER_TABLE1, 2: PAPER_TABLE2, 3: PAPER_TABLE3}

# ---------------------------------------------------------------------------- SDT-Net (stage 05)
# Table 2 of the SDT-Net paper (Zhuang et al., reference/sdt-net-debris-tracking-paper.md):
# trackers on the SDTD Debris (sparse) and Dense Debris test sets. Per split: IDF1, MOTA, IDS,
# HOTA, DetA, AssA (percent; IDS a count); NaN where the paper prints "/".
SDTNET_SOURCE = "paper (SDTD)"
_SDTNET_TABLE2 = [
    ("LSD", 11.4, 9.8, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA),
    ("DeepSORT", 71.7, 55.3, 211, 56.4, 56.9, 55.8, 72.9, 57.8, 1947, 58.7, 60.1, 57.4),
    ("MOTDT", 69.1, 54.0, 239, 54.2, 55.6, 52.8, 68.6, 53.5, 2015, 53.9, 55.7, 52.2),
    ("CTracker", 83.4, 71.0, 240, 72.9, 74.3, 71.5, 69.3, 61.7, 1660, 58.2, 63.9, 53.0),
    ("SORT+YOLOX", 85.6, 74.7, 130, 75.1, 75.3, 74.8, 76.0, 59.3, 1394, 61.5, 61.7, 61.3),
    ("CenterTrack", 86.3, 77.1, 174, 81.0, 85.6, 75.9, 72.5, 64.8, 1292, 66.1, 76.7, 56.9),
    ("ByteTrack", 91.0, 83.3, 195, 82.8, 83.9, 81.6, 79.4, 62.8, 1211, 66.3, 66.8, 65.8),
    ("OC-SORT", 91.6, 84.1, 138, 83.7, 84.9, 82.5, 82.6, 68.5, 1260, 70.8, 73.3, 68.3),
    ("SDT-Net", 91.8, 87.7, 169, 87.8, 90.9, 84.8, 80.6, 70.3, 1070, 73.6, 81.6, 65.6),
]
_SDTNET_METRICS = ("IDF1", "MOTA", "IDS", "HOTA", "DetA", "AssA")


def _sdtnet_records() -> list[dict]:
    out = []
    for name, *vals in _SDTNET_TABLE2:
        for k, split in enumerate(("sparse", "dense")):
            rec = {"source": SDTNET_SOURCE, "detector": name, "tracker": name, "split": split}
            rec.update(
                {m: float(v) for m, v in zip(_SDTNET_METRICS, vals[6 * k : 6 * k + 6], strict=True)}
            )
            out.append(rec)
    return out


#: SDT-Net Table 2 as long records: source, detector, tracker, split (sparse | dense), metrics.
PAPER_DEBRIS_TABLE2: list[dict] = _sdtnet_records()


def paper_table(number: int, datasets: Iterable[str] | None = None) -> pd.DataFrame:
    """The paper's Table ``number`` (1, 2 or 3) as a long DataFrame, optionally some datasets."""
    if number not in _PAPER:
        raise ValueError(f"the paper has Tables 1-3, not {number}")
    df = pd.DataFrame(_PAPER[number])
    if datasets is not None:
        df = df[df["dataset"].isin(list(datasets))].reset_index(drop=True)
    return df


def ours_source(datasets: Iterable[dict]) -> str:
    """The ``source`` of our rows for params ``datasets``: 'ours (synthetic)' when every entry is
    the embedded synthetic data, 'ours (real data)' when none is (the paper's layouts, a COCO
    folder), 'ours' for a mix."""
    synthetic = {spec.get("layout") == "synthetic" for spec in datasets}
    if synthetic == {True}:
        return "ours (synthetic)"
    return "ours (real data)" if synthetic == {False} else "ours"


def beside_paper(
    ours: pd.DataFrame,
    paper: pd.DataFrame | int,
    source: str = "ours (synthetic)",
    datasets: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Our rows followed, per dataset, by the paper's rows for reference.

    ours:     long-format rows (a ``source`` column is added when missing)
    paper:    a paper table number or DataFrame (e.g. ``paper_table(3)``)
    datasets: which of the paper's datasets to include (default: all, since the synthetic
              domains only mirror them)
    Rows are grouped by dataset: ours first in their own order, then the paper's datasets.
    """
    paper_df = paper_table(paper, datasets) if isinstance(paper, int) else paper.copy()
    if datasets is not None and not isinstance(paper, int):
        paper_df = paper_df[paper_df["dataset"].isin(list(datasets))]
    ours = ours.copy()
    if "source" not in ours.columns:
        ours["source"] = source
    both = pd.concat([ours, paper_df], ignore_index=True)
    order = list(dict.fromkeys([*ours.get("dataset", pd.Series(dtype=str)), *paper_df["dataset"]]))
    both["_d"] = both["dataset"].map({d: i for i, d in enumerate(order)})
    both["_p"] = (both["source"] == PAPER_SOURCE).astype(int)
    both = both.sort_values(["_d", "_p"], kind="stable").drop(columns=["_d", "_p"])
    return both.reset_index(drop=True)


def pivot_metrics(
    df: pd.DataFrame,
    index: Sequence[str] = ("dataset", "method", "model", "source"),
    columns: Sequence[str] = ("task",),
) -> pd.DataFrame:
    """Long rows -> the paper's wide shape: one column per (task, metric), e.g. ``box AP50``.

    Rows and columns keep the order in which they first appear in ``df``; columns other than
    ``index``, ``columns`` and the metrics are dropped.
    """
    index = [c for c in index if c in df.columns]
    rows: dict[tuple, dict] = {}
    for rec in df.to_dict("records"):
        key = tuple(rec[c] for c in index)
        row = rows.setdefault(key, dict(zip(index, key, strict=True)))
        prefix = " ".join(str(rec[c]) for c in columns)
        for m in METRICS:
            row[f"{prefix} {m}"] = rec[m]
    return pd.DataFrame(list(rows.values()))


def mean_over_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, method, model, task) from rows of several seeds (a ``seed``
    column): the metrics' mean, their spread (max - min, ``AP spread`` ...), the number of
    ``seeds``, and the mean of every other numeric column; other columns keep their first value.
    """
    if runs.empty:
        return runs.drop(columns=["seed"], errors="ignore")
    keys = [c for c in KEY_COLUMNS if c in runs.columns]
    grouped = runs.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(
        **{m: (m, "mean") for m in METRICS},
        **{f"{m} spread": (m, lambda v: v.max() - v.min()) for m in METRICS},
        seeds=("seed", "nunique"),
    )
    # one seed says nothing about the spread
    out.loc[out["seeds"] < 2, [f"{m} spread" for m in METRICS]] = NA
    rest = [c for c in runs.columns if c not in (*keys, *METRICS, "seed")]
    for c in rest:
        how = "mean" if pd.api.types.is_numeric_dtype(runs[c]) else "first"
        out[c] = grouped[c].agg(how)
    return out.reset_index()


def to_markdown(df: pd.DataFrame, floatfmt: str = ".1f") -> str:
    """Pipe-Markdown with floats at one decimal and NaN shown as N/A (as in the paper)."""
    shown = df.astype(object).where(df.notna(), None)
    return shown.to_markdown(index=False, floatfmt=floatfmt, missingval="N/A")


def write_table(
    df: pd.DataFrame, name: str, out_dir: str | os.PathLike, floatfmt: str = ".1f"
) -> tuple[Path, Path]:
    """Write ``{out_dir}/tables/{name}.csv`` (full precision) and ``{name}.md`` (pipe-Markdown,
    floats ``floatfmt``). Returns (csv_path, md_path)."""
    tables = Path(out_dir) / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = tables / f"{name}.csv", tables / f"{name}.md"
    df.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(df, floatfmt) + "\n")
    return csv_path, md_path


# the body may be empty and must never run past its own closing marker into the next block
_EMBED = re.compile(
    r"(<!-- table: (?P<name>[\w.-]+) -->\n)(?:(?!<!-- /table -->).)*?(<!-- /table -->)", re.S
)


def embed_tables(markdown: str, tables_dir: str | os.PathLike) -> str:
    """Replace every ``<!-- table: NAME -->`` ... ``<!-- /table -->`` block of ``markdown`` with
    ``tables_dir/NAME.csv`` rendered as pipe-Markdown (long-format tables in the paper's wide
    shape), so the README always shows the committed results and nothing typed by hand."""

    def render(match: re.Match) -> str:
        path = Path(tables_dir) / f"{match['name']}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"README embeds table '{match['name']}' but {path} is missing")
        df = pd.read_csv(path)
        if set(KEY_COLUMNS) <= set(df.columns) and set(METRICS) <= set(df.columns):
            return f"{match.group(1)}{to_markdown(pivot_metrics(df))}\n{match.group(3)}"
        # other tables (timings, counts) span orders of magnitude: significant digits, not decimals
        return f"{match.group(1)}{to_markdown(df, floatfmt='.4g')}\n{match.group(3)}"

    return _EMBED.sub(render, markdown)


BENCHMARK_COLUMNS = ("benchmark", "setting", "value", "unit", "notes")


def record_benchmarks(rows: Sequence[dict], out_dir: str | os.PathLike = "results") -> Path:
    """Add benchmark rows to ``{out_dir}/tables/benchmarks.{csv,md}``.

    A row replaces an existing one with the same (benchmark, setting); other rows are kept, so
    each benchmark script updates only its own figures. Columns: ``BENCHMARK_COLUMNS``.
    """
    path = Path(out_dir) / "tables" / "benchmarks.csv"
    new = pd.DataFrame(list(rows), columns=list(BENCHMARK_COLUMNS))
    if path.is_file():
        old = pd.read_csv(path, dtype={"benchmark": str, "setting": str})
        replaced = old.set_index(["benchmark", "setting"]).index.isin(
            new.set_index(["benchmark", "setting"]).index
        )
        new = pd.concat([old[~replaced], new], ignore_index=True)
    write_table(new, "benchmarks", out_dir, floatfmt=".3g")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m afss_utils.tables --embed README.md [--tables results/tables]``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--embed", required=True, help="markdown file to update in place")
    parser.add_argument("--tables", default="results/tables", help="folder of table CSVs")
    args = parser.parse_args(argv)
    path = Path(args.embed)
    path.write_text(embed_tables(path.read_text(), args.tables))
    print(f"updated tables in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
