"""The prose after each table and figure of the notebooks, generated from the data.

Every "what to look at" paragraph is an f-string over the table it follows, so when the numbers
change the sentences change with them and can never contradict the outputs. The functions are
pure (a DataFrame or dict in, a Markdown string out); the notebooks display them with
``IPython.display.Markdown``. Two small helpers serve the notebooks' cell structure:
:func:`run_from_repo_root` (relative params paths resolve from the repository root, also when
JupyterLab starts the kernel inside ``notebooks/``) and :func:`require` (a missing input names
the notebook to run first).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd


# ---------------------------------------------------------------------------- notebook plumbing
def run_from_repo_root(cwd: str | os.PathLike | None = None) -> Path:
    """``chdir`` to the repository root when the kernel runs inside its ``notebooks/`` folder.

    JupyterLab starts a notebook's kernel in the notebook's folder; the study runner starts it in
    the repository root (or a folder it is given), where the params' relative paths resolve.
    Any other working directory is left alone. Returns the working directory afterwards.
    """
    here = Path(cwd or Path.cwd()).resolve()
    if here.name == "notebooks" and (here.parent / "afss_utils").is_dir():
        os.chdir(here.parent)
        return here.parent
    return here


def require(paths: Iterable[str | os.PathLike], notebook: str) -> None:
    """FileNotFoundError naming ``notebook`` (the one that writes them) when a path is missing."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(
            f"missing input(s): {', '.join(missing)}. Run notebook {notebook} first "
            "(with the same params) to write them."
        )


def _f(x: float, nd: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _signed(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.1f}"


def _bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


# ---------------------------------------------------------------------------- 00 datasets
def dataset_stats(stats: pd.DataFrame) -> str:
    """Test rows of the dataset statistics: blending (gap), brightness, object size."""
    test = stats[stats["split"] == "test"].set_index("dataset")
    if test.empty:
        return "**What to look at:** no test split was opened."
    blend, dark, big = test["gap %"].idxmin(), test["brightness %"].idxmin(), test["area p50 %"]
    return (
        f"**What to look at:** on the test splits, `{blend}` has the smallest object-background "
        f"gap ({_f(test.loc[blend, 'gap %'])} %, the spacecraft blends in most) and `{dark}` the "
        f"darkest frames (mean luma {_f(test.loc[dark, 'brightness %'])} %); the median object "
        f"covers {_f(big.min())}–{_f(big.max())} % of the frame, and "
        f"{_f(test['truncated %'].min())}–{_f(test['truncated %'].max())} % of objects touch "
        "the border."
    )


# ---------------------------------------------------------------------------- 01 zero-shot
def best_by(table: pd.DataFrame, metric: str = "AP75", task: str = "box") -> pd.DataFrame:
    """Per dataset, the row of ``table`` (one task) with the highest ``metric``."""
    d = table[(table["task"] == task) & table[metric].notna()]
    return d.loc[d.groupby("dataset", sort=False)[metric].idxmax()]


def zero_shot(ours: pd.DataFrame, unavailable: Mapping[str, str] | None = None) -> str:
    """Table I: the best teacher per dataset (box AP75) and the teachers that did not run."""
    best = best_by(ours)
    lines = [
        f"`{r.dataset}`: **{r.model}** is best with box AP75 {_f(r.AP75)} "
        f"(AP {_f(r.AP)}, AP50 {_f(r.AP50)})"
        for r in best.itertuples()
    ]
    lines += [f"not run: `{name}` ({reason})" for name, reason in (unavailable or {}).items()]
    gap = ours[ours["task"] == "box"]
    drop = (gap["AP50"] - gap["AP75"]).mean() if len(gap) else math.nan
    return (
        "**What to look at:** the best teacher per dataset, and how far tight localisation "
        f"(AP75) falls behind finding the object (AP50): {_f(drop)} points on average.\n\n"
        + _bullets(lines)
    )


# ---------------------------------------------------------------------------- 02 TTA
def one_image_tta(box: list[float], views: Mapping[str, list[float]], fused: list[float]) -> str:
    """The one-image walk-through: each view's box mapped back and the fused box."""
    lines = [f"{name}: [{', '.join(_f(v) for v in b)}]" for name, b in views.items()]
    return (
        f"**What to look at:** the teacher's box on the image is "
        f"[{', '.join(_f(v) for v in box)}]; mapped back from each view it is\n\n"
        + _bullets(lines)
        + f"\n\nand fused (eq. 4): [{', '.join(_f(v) for v in fused)}]."
    )


def tta_choice(rows: pd.DataFrame) -> str:
    """Table II: ``rows`` has dataset, setting, single AP75, chosen AP75, cost ratio per dataset."""
    lines = [
        f"`{r.dataset}`: chosen on val **{r.setting}**: test box AP75 {_f(r.chosen)} vs "
        f"single view {_f(r.single)} ({_signed(r.chosen - r.single)}), {_f(r.cost)}x the cost"
        for r in rows.itertuples()
    ]
    gains = (rows["chosen"] - rows["single"]).dropna()
    verdict = (
        f"TTA helps on {int((gains > 0).sum())} of {len(gains)} datasets"
        if len(gains)
        else "no dataset was compared"
    )
    return f"**What to look at:** {verdict}.\n\n" + _bullets(lines)


def tta_views(box: pd.DataFrame, no_fusion: str = "none") -> str:
    """The views figure: per dataset, the single view's AP75 and the best and worst set sizes."""
    lines = []
    for name, d in box.groupby("dataset", sort=False):
        single = d[d["fusion"] == no_fusion]["AP75"]
        fused = d[d["fusion"] != no_fusion].groupby("views")["AP75"].max()
        if not len(single) or not len(fused):
            continue
        lines.append(
            f"`{name}`: single view {_f(single.iloc[0])}; best set of {fused.idxmax()} views "
            f"{_f(fused.max())}, of {fused.index.max()} views {_f(fused.iloc[-1])}"
        )
    return (
        "**What to look at:** whether box AP75 falls as views are added (the paper saw it fall).\n\n"
        + _bullets(lines)
    )


# ---------------------------------------------------------------------------- 03 distillation
def label_quality(quality: pd.DataFrame) -> str:
    """Mean box IoU of the single-view and TTA pseudo-labels with the hidden ground truth."""
    m = quality.groupby(["dataset", "labels"], sort=False)["box_iou"].mean().unstack()
    lines = [
        f"`{name}`: single view {_f(r.get('single', math.nan), 3)}, "
        f"TTA {_f(r.get('tta', math.nan), 3)}"
        for name, r in m.iterrows()
    ]
    return "**What to look at:** mean box IoU of the training pseudo-labels.\n\n" + _bullets(lines)


def confidence_filter(cf: pd.DataFrame) -> str:
    """The CF table: theta, images kept and the IoU of kept vs dropped labels per dataset."""
    lines = [
        f"`{r['dataset']}`: θ = {_f(r['theta'], 3)} keeps {int(r['kept'])} of "
        f"{int(r['train images'])} images; box IoU kept {_f(r['box IoU kept'], 3)} vs "
        f"dropped {_f(r['box IoU dropped'], 3)}"
        for _, r in cf.iterrows()
    ]
    better = int((cf["box IoU kept"] > cf["box IoU dropped"]).sum())
    return (
        f"**What to look at:** the filter keeps the better labels on {better} of {len(cf)} "
        "datasets (kept IoU above dropped IoU).\n\n" + _bullets(lines)
    )


def distillation(ours: pd.DataFrame, teacher: str, models: Iterable[str], metric="AP75") -> str:
    """Table III: Oracle, best distilled row and the CF and TR effects per dataset and student."""

    def value(name, method, model):
        d = ours[(ours["dataset"] == name) & (ours["method"] == method) & (ours["model"] == model)]
        d = d[d["task"] == "box"]
        return float(d[metric].iloc[0]) if len(d) else math.nan

    rows = ["TTA+WBF", "TTA+WBF+CF", "TTA+WBF+CF+TR"]
    lines = []
    for name in ours["dataset"].drop_duplicates():
        zs = value(name, "teacher zero-shot", teacher)
        for model in models:
            got = {m: value(name, m, model) for m in rows}
            best_m = max(rows, key=lambda m: -1 if math.isnan(got[m]) else got[m])
            lines.append(
                f"`{name}` / {model}: Oracle {_f(value(name, 'Oracle', model))}, best distilled "
                f"{best_m} {_f(got[best_m])} vs the teacher's {_f(zs)} "
                f"({_signed(got[best_m] - zs)}); CF {_signed(got['TTA+WBF+CF'] - got['TTA+WBF'])}, "
                f"TR {_signed(got['TTA+WBF+CF+TR'] - got['TTA+WBF+CF'])}"
            )
    return f"**What to look at:** box {metric} of each row.\n\n" + _bullets(lines)


def convergence(curve: pd.DataFrame, teacher_ap: Mapping[str, float]) -> str:
    """The Oracle's last checkpoint gain per dataset: is the comparison settled?"""
    lines = []
    for name, d in curve.groupby("dataset", sort=False) if len(curve) else []:
        d = d.sort_values("epoch")
        last, prev = d.iloc[-1], d.iloc[-2] if len(d) > 1 else d.iloc[-1]
        lines.append(
            f"`{name}`: Oracle box AP {_f(last['AP'])} after {int(last['epoch'])} epochs "
            f"({_signed(last['AP'] - prev['AP'])} over epoch {int(prev['epoch'])}); teacher "
            f"zero-shot {_f(teacher_ap.get(name, math.nan))}"
        )
    if not lines:
        return "**What to look at:** no checkpoint was saved, so there is no curve."
    return (
        "**What to look at:** the gain of the last checkpoint over the one before it; a flat "
        "end means more training would not change the comparison.\n\n" + _bullets(lines)
    )


def relabel_rounds(relabel: pd.DataFrame, metric: str = "AP75") -> str:
    """Test box ``metric`` per relabel round, per dataset and student."""
    box = relabel[relabel["task"] == "box"]
    lines = [
        f"`{name}` / {student}: "
        + ", ".join(f"round {int(r['round'])} {_f(r[metric])}" for _, r in d.iterrows())
        for (name, student), d in box.groupby(["dataset", "student"], sort=False)
    ]
    return f"**What to look at:** test box {metric} per round.\n\n" + _bullets(lines)


# ---------------------------------------------------------------------------- 04 figures
def label_iou_summary(summary: pd.DataFrame) -> str:
    """Mean box IoU per label set (columns) and dataset (index), plus kept share and rho."""
    lines = []
    for name, r in summary.iterrows():
        sets = ", ".join(
            f"{c} {_f(r[c], 3)}"
            for c in summary.columns
            if c not in ("theta", "kept by CF %", "Spearman rho")
        )
        extra = ""
        if "kept by CF %" in summary:
            extra += f"; CF keeps {_f(r['kept by CF %'])} %"
        if "Spearman rho" in summary:
            extra += f", ρ = {_f(r['Spearman rho'], 2)}"
        lines.append(f"`{name}`: {sets}{extra}")
    return "**What to look at:** mean box IoU of the labels at each step.\n\n" + _bullets(lines)
