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

import numpy as np
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


def _missing(df: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The ``columns`` that ``df`` lacks, in order."""
    return [c for c in columns if c not in df.columns]


def _bullets(lines: Iterable[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


# ---------------------------------------------------------------------------- 00 datasets
# box area p5 / p50 / p95 (% of the frame) of a small satellite in public SPEED-style renders at
# the SPEED+ camera (issue #25): the range the default data is meant to span
REAL_BOX_AREA = (0.4, 1.1, 9.0)


def dataset_stats(stats: pd.DataFrame) -> str:
    """Test rows of the dataset statistics: blending (gap), brightness, object size; and, where
    the table has them, the training splits' box-area range beside real renders' and the share
    of frames with the Earth's limb."""
    test = stats[stats["split"] == "test"].set_index("dataset")
    if test.empty:
        return "**What to look at:** no test split was opened."
    blend, dark, big = test["gap %"].idxmin(), test["brightness %"].idxmin(), test["area p50 %"]
    text = (
        f"**What to look at:** on the test splits, `{blend}` has the smallest object-background "
        f"gap ({_f(test.loc[blend, 'gap %'])} %, the spacecraft blends in most) and `{dark}` the "
        f"darkest frames (mean luma {_f(test.loc[dark, 'brightness %'])} %); the median object "
        f"covers {_f(big.min())}–{_f(big.max())} % of the frame, and "
        f"{_f(test['truncated %'].min())}–{_f(test['truncated %'].max())} % of objects touch "
        "the border."
    )
    train = stats[stats["split"] == "train"].set_index("dataset")
    quantiles = ["box area p5 %", "box area p50 %", "box area p95 %"]
    if not train.empty and set(quantiles) <= set(train.columns):
        spans = ", ".join(
            f"`{name}` {' / '.join(_f(row[q]) for q in quantiles)} %"
            for name, row in train.iterrows()
        )
        text += (
            f" The spacecraft's box covers (p5 / p50 / p95 of the training images) {spans}; a "
            f"small satellite in SPEED-style renders {' / '.join(_f(v) for v in REAL_BOX_AREA)} %."
        )
        limb = train.get("limb in frame %", pd.Series(dtype=float)).dropna()
        if len(limb):
            text += (
                " The Earth's limb is in frame in "
                + ", ".join(f"{_f(v)} % of `{name}`" for name, v in limb.items())
                + " training images."
            )
    return text


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


# Teacher-name prefixes of the weight-free teachers (classical image processing, no weights).
WEIGHT_FREE_PREFIXES = ("classical", "streak")


def _names(items: Iterable[str]) -> str:
    return ", ".join(f"`{x}`" for x in items)


def teachers_ran(
    ran: Iterable[str], unavailable: Mapping[str, str] | None = None, what: str = "our rows"
) -> str:
    """The legend of a table of teacher results: which teachers made ``what`` (weight-free
    classical ones, VLMs), and which did not run for want of weights (``unavailable``)."""
    ran = list(dict.fromkeys(ran))
    free = [t for t in ran if str(t).startswith(WEIGHT_FREE_PREFIXES)]
    vlm = [t for t in ran if t not in free]
    missing = _names(unavailable or {})
    if not ran:
        tail = f" (not run, no weights here: {missing})" if missing else ""
        return f"**Which teacher ran:** none, so {what} are empty{tail}."
    parts = []
    if free:
        parts.append(f"the weight-free {_names(free)} (classical image processing, no VLM)")
    if vlm:
        parts.append(f"the vision-language teacher(s) {_names(vlm)} (local weights)")
    text = f"**Which teacher ran:** {what} come from " + " and ".join(parts)
    if missing:
        text += f"; not run (no weights here): {missing}"
    if not vlm:
        text += ". No vision-language model ran"
    return text + "."


def paper_best(paper: pd.DataFrame, metric: str = "AP") -> str:
    """The paper's Table I rows (``dataset``, ``model``, ``task`` box | mask, ``metric``): per
    dataset the best model on boxes and on masks, and the datasets where they differ."""
    if msg := _lacks(paper, ("dataset", "model", "task", metric)):
        return msg
    lines, differ = [], []
    for name, d in paper.groupby("dataset", sort=False):
        best = {}
        for task in ("box", "mask"):
            t = d[d["task"] == task].dropna(subset=[metric])
            if len(t):
                best[task] = t.loc[t[metric].idxmax()]
        if not best:
            continue
        parts = [
            f"{'boxes' if task == 'box' else 'masks'} **{r['model']}** ({metric} {_f(r[metric])})"
            for task, r in best.items()
        ]
        if len(best) == 2 and best["box"]["model"] != best["mask"]["model"]:
            differ.append(name)
            box_model = best["box"]["model"]
            own = d[(d["task"] == "mask") & (d["model"] == box_model)][metric]
            if len(own):
                parts[-1] += f", against {box_model}'s {_f(own.iloc[0])}"
        elif "mask" not in best:
            parts.append("no masks")
        lines.append(f"`{name}`: " + "; ".join(parts))
    if not lines:
        return f"**What to look at:** no paper row has a {metric}."
    verdict = (
        f"the best model on boxes is not the best on masks on {_names(differ)}"
        if differ
        else "the same model is best on boxes and on masks on every dataset that has masks"
    )
    return f"**What to look at:** in the paper's rows, {verdict}.\n\n" + _bullets(lines)


def classical_confidence(factors: pd.DataFrame, score: float) -> str:
    """One weight-free label's confidence by hand: ``factors`` has one row per factor of the
    product under the square root (index: the factor's name, column ``factor``), ``score`` the
    teacher's own; names the smallest factor, the one that holds the score down most."""
    if msg := _lacks(factors, ("factor",)):
        return msg
    f = factors["factor"].astype(float)
    product = float(f.prod())
    low = f.idxmin()
    terms = " · ".join(_f(v, 3) for v in f)
    return (
        f"**What to look at:** s = √({terms}) = {_f(math.sqrt(max(product, 0.0)), 3)}, the "
        f"teacher's score {_f(score, 3)} (asserted equal). The smallest factor is **{low}** "
        f"({_f(float(f[low]), 3)}): it holds this label's confidence down most."
    )


def earth_confusions(table: pd.DataFrame, teacher: str, shown: int = 0) -> str:
    """The Earth-confusion counts (``teacher``, ``dataset``, ``images with Earth in frame``,
    ``confusions``, ``share %``; one row per teacher and dataset that records the Earth's box):
    how often ``teacher`` boxes the Earth instead of the spacecraft, where most, and the other
    teachers' totals; ``shown`` is the number of examples the figure shows. One line, saying
    why, when no dataset records the Earth or ``teacher`` has no row."""
    columns = ("teacher", "dataset", "images with Earth in frame", "confusions")
    if missing := _missing(table, columns):
        return f"**What to look at:** the table lacks column(s) {', '.join(missing)}."
    if table.empty:
        return (
            "**What to look at:** no test split records where the Earth is in its images "
            "(`earth_box`: the real datasets do not, nor do synthetic splits rendered before "
            "the renderer wrote it), so Earth confusions cannot be counted here."
        )
    totals = table.groupby("teacher", sort=False)[list(columns[2:])].sum()
    others = [
        f"`{t}` {int(r['confusions'])} of {int(r['images with Earth in frame'])}"
        for t, r in totals.iterrows()
        if t != teacher
    ]
    rest = f" (other teachers: {', '.join(others)})" if others else ""
    if teacher not in totals.index:
        return f"**What to look at:** `{teacher}` did not run here{rest}."
    n, of = int(totals.loc[teacher, "confusions"]), int(totals.loc[teacher, columns[2]])
    if not of:
        return "**What to look at:** no test image has the Earth in frame, so none is confused."
    own = table[(table["teacher"] == teacher) & (table[columns[2]] > 0)]
    worst = own.loc[own["share %"].idxmax()] if n else None
    where = f", most often on `{worst['dataset']}` ({_f(worst['share %'])} %)" if n else ""
    share = f" ({_f(100.0 * n / of)} %)"
    figure = f"; the figure shows {shown}, the most confident first" if shown else ""
    return (
        f"**What to look at:** `{teacher}` boxes the Earth instead of the spacecraft on {n} of "
        f"{of} test images with the Earth in frame{share}{where}{rest}{figure}."
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
        cells = d[(d["fusion"] != no_fusion) & d["AP75"].notna()]
        fused = cells.groupby("views")["AP75"].max()
        if not len(single) or not len(fused):
            continue
        which = ""
        if "augmentations" in cells:  # name the cell: sets of one size are different families
            top = cells.loc[cells["AP75"].idxmax()]
            which = f" ({top['augmentations']} / {top['fusion']})"
        lines.append(
            f"`{name}`: single view {_f(single.iloc[0])}; best set of {fused.idxmax()} views "
            f"{_f(fused.max())}{which}, of {fused.index.max()} views {_f(fused.iloc[-1])}"
        )
    return (
        "**What to look at:** whether box AP75 falls as views are added (the paper saw it fall).\n\n"
        + _bullets(lines)
    )


def nms_vs_soft_nms(box: pd.DataFrame) -> str:
    """Ablation rows (``dataset``, ``augmentations``, ``fusion``, ``AP75``): in how many cells
    NMS and soft-NMS give the same AP75, and why they can."""
    if msg := _lacks(box, ("dataset", "augmentations", "fusion", "AP75")):
        return msg
    wide = box[box["fusion"].isin(["nms", "soft_nms"])].pivot_table(
        index=["dataset", "augmentations"], columns="fusion", values="AP75", aggfunc="first"
    )
    if not {"nms", "soft_nms"} <= set(wide.columns) or wide.dropna().empty:
        return "**What to look at:** the grid does not compare NMS with soft-NMS."
    wide = wide.dropna()
    same = int(np.isclose(wide["nms"], wide["soft_nms"], atol=1e-9).sum())
    n = len(wide)
    if same == n:
        return (
            f"**What to look at:** NMS and soft-NMS give the same AP75 in all {n} cells (their "
            "markers sit side by side): with one box per view and one fused box kept (`top_k`), "
            "both keep the top-scoring box with its own score, and soft-NMS only decays the "
            "boxes that are then dropped."
        )
    return (
        f"**What to look at:** NMS and soft-NMS differ in {n - same} of {n} cells: soft-NMS "
        "keeps overlapping boxes with decayed scores where NMS drops them."
    )


def wbf_rescale(cases: pd.DataFrame, tau: float) -> str:
    """Two-view WBF examples: one row per case with ``case``, ``IoU`` of the two boxes, ``M``
    (boxes in the kept cluster), ``T`` (views passed to WBF), ``mean`` (eq. 4's s*) and
    ``ensemble_boxes`` (the fused score it returns); says where the score drops and why."""
    if msg := _lacks(cases, ("case", "IoU", "M", "T", "mean", "ensemble_boxes")):
        return msg
    lines = []
    for r in cases.to_dict("records"):
        m, t = int(r["M"]), int(r["T"])
        if m < t:
            how = (
                f"IoU {_f(r['IoU'], 3)} ≤ τ = {_f(tau, 2)}: each box is its own cluster, so the "
                f"kept one has M = {m} of T = {t} views; eq. 4 alone leaves s* = {_f(r['mean'], 3)}"
                f", `ensemble_boxes` returns {_f(r['mean'], 3)} · {min(m, t)}/{t} = "
                f"{_f(r['ensemble_boxes'], 3)}: **lowered**"
            )
        else:
            how = (
                f"IoU {_f(r['IoU'], 3)} > τ = {_f(tau, 2)}: one cluster of M = {m} boxes from "
                f"T = {t} views, the factor is {min(m, t)}/{t} = 1 and s* is eq. 4's mean "
                f"{_f(r['ensemble_boxes'], 3)}: **not lowered**"
            )
        lines.append(f"{r['case']}: {how}")
    return (
        "**What to look at:** the fused score drops only where the views disagree, and only "
        "through the factor min(M, T)/T, not through eq. 4's mean (all three columns asserted "
        "equal).\n\n" + _bullets(lines)
    )


def flip_equivariance(
    shift_px: float,
    box: pd.DataFrame,
    no_fusion: str = "none",
    flip_sets: Iterable[str] = ("hflip", "vflip", "hflip+vflip"),
    tol: float = 0.05,
) -> str:
    """Whether flips give the teacher a second opinion: ``shift_px``, the largest coordinate
    difference (px) between a flipped view's box mapped back and the identity's (section 1), and
    the test rows of ``box`` (``dataset``, ``augmentations``, ``fusion``, ``AP75``): per dataset
    the range of AP75 changes of the flip-only sets against the single view."""
    if msg := _lacks(box, ("dataset", "augmentations", "fusion", "AP75")):
        return msg
    flip_sets = list(flip_sets)
    lines, changes = [], []
    for name, d in box.groupby("dataset", sort=False):
        single = d[d["fusion"] == no_fusion]["AP75"].dropna()
        flips = d[d["augmentations"].isin(flip_sets) & (d["fusion"] != no_fusion)]["AP75"]
        flips = flips.dropna()
        if single.empty or flips.empty:
            continue
        delta = flips - single.iloc[0]
        changes += list(delta)
        lines.append(
            f"`{name}`: {_signed(delta.min())} to {_signed(delta.max())} points over "
            f"{len(delta)} flip cells"
        )
    if not lines:
        return "**What to look at:** the grid has no flip-only set to compare with the single view."
    moved = not math.isnan(shift_px) and shift_px > 0.5
    if moved or max(abs(c) for c in changes) > tol:
        verdict = (
            f"this teacher is **not** exactly flip-equivariant: a flipped view's box comes back "
            f"up to {_f(shift_px)} px away from the identity's (section 1), so its flips are a "
            "slightly different second opinion; the flip-only sets change test box AP75, "
            "against the single view, by:"
        )
    else:
        verdict = (
            "this teacher is flip-equivariant here: a flipped view's box comes back where the "
            f"identity's is ({_f(shift_px)} px), so flips add no information; the flip-only "
            "sets change test box AP75, against the single view, by:"
        )
    return f"**What to look at:** {verdict}\n\n" + _bullets(lines)


# ---------------------------------------------------------------------------- 03 distillation
def _ticks(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _span(values: Iterable[float], nd: int = 1) -> str:
    """'50–59' for a range of values, '85' when they agree at ``nd`` decimals."""
    values = list(values)
    lo, hi = _f(min(values), nd), _f(max(values), nd)
    return lo if lo == hi else f"{lo}–{hi}"


def _label_change(deltas: Mapping[str, float], what: str, same: float = 0.005) -> str:
    """A verdict on a change of the labels' mean box IoU per dataset (``deltas``, after minus
    before): better where it rises by more than ``same``, worse where it falls by more."""
    known = {n: d for n, d in deltas.items() if d is not None and not math.isnan(d)}
    if not known:
        return f"**{what}: not measured** (no dataset has both label sets)."
    up = [n for n, d in known.items() if d > same]
    down = [n for n, d in known.items() if d < -same]
    span = f"mean box IoU {min(known.values()):+.3f} to {max(known.values()):+.3f}"
    if not up and not down:
        return (
            f"**{what} leaves the labels as they were** ({span}: within ±{same} on every dataset)."
        )
    if up and not down:
        return f"**{what} improves the labels on {len(up)} of {len(known)} datasets** ({span})."
    if down and not up:
        return (
            f"**{what} makes the labels worse on {len(down)} of {len(known)} datasets** ({span})."
        )
    return f"**{what} improves the labels on {_ticks(up)} but worsens them on {_ticks(down)}** ({span})."


def label_quality(quality: pd.DataFrame, same: float = 0.005) -> str:
    """Mean box IoU of the single-view and TTA pseudo-labels with the hidden ground truth, and
    the verdict: does TTA+fusion change the labels by more than ``same`` IoU, and which way?"""
    if quality.empty:
        return "**What to look at:** no training image has a pseudo-label to measure."
    m = quality.groupby(["dataset", "labels"], sort=False)["box_iou"].mean().unstack()
    lines, deltas = [], {}
    for name, r in m.iterrows():
        single, tta = r.get("single", math.nan), r.get("tta", math.nan)
        deltas[name] = tta - single
        lines.append(f"`{name}`: single view {_f(single, 3)}, TTA {_f(tta, 3)}")
    return (
        "**What to look at:** mean box IoU of the training pseudo-labels.\n\n"
        + _bullets(lines)
        + f"\n\nVerdict: {_label_change(deltas, 'TTA+fusion', same)}"
    )


def _kept_share_verdict(shares: Iterable[float], paper: Iterable[float], rule: str = "") -> str:
    """Where the kept shares (percent, one per dataset) lie against the paper's per-dataset kept
    shares (percent): inside their range is the paper's kept share; below, a stricter filter;
    above, a looser one."""
    shares = [s for s in shares if s is not None and not math.isnan(s)]
    paper = list(paper)
    who = f"`{rule}` keeps" if rule else "keeps"
    if not shares:
        return f"{who} nothing measurable (no labels)"
    rng = f"{_span(shares, 0)} %"
    if not paper:
        return f"{who} {rng} of the images"
    lo, hi = min(paper), max(paper)
    ref = f"the paper's {_span(paper, 0)} %"
    inside = sum(lo - 0.5 <= s <= hi + 0.5 for s in shares)
    every = " on every dataset" if len(shares) > 1 else ""
    if inside == len(shares):
        return f"{who} {rng}: **inside {ref}, the paper's kept share**"
    if all(s < lo for s in shares):
        short = _span([lo - s for s in shares], 0)
        return (
            f"{who} {rng}: **below {ref}{every}**, a stricter filter than the paper's ({short} "
            "points short of its lowest)"
        )
    if all(s > hi for s in shares):
        return f"{who} {rng}: **above {ref}{every}**, a looser filter than the paper's"
    return f"{who} {rng}: **inside {ref} on {inside} of {len(shares)} datasets**"


def filter_by_hand(
    name: str,
    rule: str,
    theta: float,
    kept: int,
    total: int,
    lowest: float,
    highest: float,
    paper_kept: Iterable[float] = (),
) -> str:
    """Eq. 6 by hand on one dataset: theta of ``rule``, labels kept of ``total``, the score
    range, and the verdict on the kept share against the paper's (``paper_kept``: percent of
    images its filter kept, one per dataset)."""
    if not total:
        return f"**What to look at:** `{name}` has no labels to filter."
    share = 100 * kept / total
    return (
        f"**What to look at:** on `{name}`, θ = {_f(theta, 3)} (the `{rule}` rule) keeps {kept} "
        f"of {total} labels ({_f(share, 0)} %), by hand and by `confidence_filter` alike "
        f"(asserted); scores range {_f(lowest, 3)}–{_f(highest, 3)}.\n\nVerdict: this rule "
        + _kept_share_verdict([share], paper_kept)
        + "."
    )


def confidence_filter(cf: pd.DataFrame, paper_kept: Iterable[float] = ()) -> str:
    """The CF table: per dataset, theta and images kept under each rule (a ``rule`` column, the
    params' rule first; without it one rule), and the box IoU of the labels the first rule keeps
    vs drops. Verdicts: does the confidence separate better labels from worse, and does each
    rule keep the paper's share (``paper_kept``: its percent kept per dataset)?"""
    if cf.empty:
        return "**What to look at:** no dataset had labels to filter."
    rules = list(cf["rule"].drop_duplicates()) if "rule" in cf else [None]
    pick = {rule: cf if rule is None else cf[cf["rule"] == rule] for rule in rules}
    first = pick[rules[0]]
    shares: dict = {rule: [] for rule in rules}
    lines = []
    for name in cf["dataset"].drop_duplicates():
        parts = []
        for rule in rules:
            d = pick[rule][pick[rule]["dataset"] == name]
            if not len(d):
                continue
            r = d.iloc[0]
            share = 100 * r["kept"] / r["train images"] if r["train images"] else math.nan
            shares[rule].append(share)
            label = "" if rule is None else f"`{rule}`: "
            parts.append(
                f"{label}θ = {_f(r['theta'], 3)} keeps {int(r['kept'])} of "
                f"{int(r['train images'])} images ({_f(share, 0)} %)"
            )
        r0 = first[first["dataset"] == name]
        iou = ""
        if len(r0):
            by = "" if rules[0] is None or len(rules) == 1 else f" by `{rules[0]}`"
            iou = (
                f"; box IoU of the labels kept{by} {_f(r0.iloc[0]['box IoU kept'], 3)} vs "
                f"dropped {_f(r0.iloc[0]['box IoU dropped'], 3)}"
            )
        lines.append(f"`{name}`: " + "; ".join(parts) + iou)
    dropped_none = first["box IoU dropped"].isna()
    better = int((first["box IoU kept"] > first["box IoU dropped"]).sum())
    n = int((~dropped_none).sum())
    if n == 0:
        quality = (
            f"**the filter drops nothing on any of the {len(first)} datasets**, so it cannot "
            "change the labels"
        )
    elif better == n:
        quality = (
            f"**the filter keeps the better labels on {better} of {n} datasets** (kept IoU above "
            "dropped IoU): the confidence separates good labels from bad"
        )
    else:
        quality = (
            f"**the filter keeps the better labels on only {better} of {n} datasets** (kept IoU "
            "above dropped IoU): the confidence is a poor guide to label quality there"
        )
    if dropped_none.any() and n:
        quality += f"; it drops nothing on {_ticks(first.loc[dropped_none, 'dataset'])}"
    paper_kept = list(paper_kept)
    kept_lines = [_kept_share_verdict(shares[rule], paper_kept, rule or "") for rule in rules]
    return (
        "**What to look at:** θ and the images each rule keeps, and the labels' quality.\n\n"
        + _bullets(lines)
        + f"\n\nVerdict: {quality}. Kept share: "
        + "; ".join(kept_lines)
        + "."
    )


def _box_value(ours: pd.DataFrame, name: str, method: str, model: str, column: str) -> float:
    d = ours[(ours["dataset"] == name) & (ours["method"] == method) & (ours["model"] == model)]
    d = d[d["task"] == "box"]
    if not len(d) or column not in d:
        return math.nan
    return float(d[column].iloc[0])


def _nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def effect(delta: float, spread: float, unit: str = "AP") -> str:
    """``delta`` with its sign and where it lies against the seed ``spread`` (max - min over the
    seeds of the two rows compared; NaN for single-seed rows): "+2.6 AP (inside the seed spread
    of 3.0)", "-5.8 AP (beyond the seed spread of 2.7)", "+1.0 AP (one seed: no spread)"."""
    if _nan(delta):
        return "n/a"
    value = f"{_signed(delta)} {unit}".rstrip()
    if _nan(spread):
        return f"{value} (one seed: no spread to compare with)"
    where = "inside" if abs(delta) <= spread else "beyond"
    return f"{value} ({where} the seed spread of {_f(spread)})"


# what a change is, against the seed spread: helps / hurts / noise (inside the spread) / none
_WORDS = {
    "helps": " helps",
    "hurts": " hurts",
    "noise": ": no effect beyond seed noise",
    "none": ": no change",
    "n/a": ": not measured",
}


def _word(delta: float, spread: float) -> str:
    if _nan(delta):
        return "n/a"
    if not _nan(spread) and abs(delta) <= spread:
        return "noise"
    return "helps" if delta > 0 else "hurts" if delta < 0 else "none"


def _verdict_word(delta: float, spread: float) -> str:
    return _WORDS[_word(delta, spread)]


def _yes_partly_no(
    verdicts: Mapping[str, str], phrases: Mapping[str, str], good: str, prefix: str, yes: str
) -> str:
    """**yes** (``yes``) when every dataset's verdict is ``good``; otherwise **partly** (some
    are) or **no**, then ``prefix`` and, for each verdict in ``phrases`` order, its phrase and
    the datasets that have it."""
    n = len(verdicts)
    if all(v == good for v in verdicts.values()):
        return f"**yes**: {yes}"
    parts = [
        f"{phrase} {_ticks(k for k, v in verdicts.items() if v == w)}"
        for w, phrase in phrases.items()
        if w in verdicts.values()
    ]
    lead = "**partly**" if good in verdicts.values() else "**no**"
    return f"{lead}: {prefix} " + ", ".join(parts) + f" (of {n})."


def _answer(words: Mapping[str, str], subject: str) -> str:
    """One answer for per-dataset ``words`` (helps/hurts/noise/none/n/a): **yes** when it helps
    everywhere, **no** when it helps nowhere, **partly** otherwise, with where."""
    phrases = {
        "helps": "helps on",
        "hurts": "hurts on",
        "noise": "is inside the seed spread on",
        "none": "changes nothing on",
    }
    words = {k: w for k, w in words.items() if w in phrases}
    if not words:
        return f"**not measured**: no {subject} rows to compare."
    yes = f"{subject} helps on all {len(words)} beyond the seed spread."
    return _yes_partly_no(words, phrases, "helps", subject, yes)


def distillation(ours: pd.DataFrame, teacher: str, models: Iterable[str], metric="AP75") -> str:
    """Table III: Oracle, best distilled row and the CF and TR effects per dataset and student,
    and the verdict: does the best distilled student beat the teacher's zero-shot labels beyond
    the seed spread (``{metric} spread`` column, when there is one)?"""
    rows = ["TTA+WBF", "TTA+WBF+CF", "TTA+WBF+CF+TR"]
    models = list(models)
    lines, words = [], {}
    for name in ours["dataset"].drop_duplicates():
        zs = _box_value(ours, name, "teacher zero-shot", teacher, metric)
        for model in models:
            got = {m: _box_value(ours, name, m, model, metric) for m in rows}
            if all(math.isnan(v) for v in got.values()):
                continue
            best_m = max(rows, key=lambda m: -1 if math.isnan(got[m]) else got[m])
            delta = got[best_m] - zs
            spread = _box_value(ours, name, best_m, model, f"{metric} spread")
            words[name if len(models) == 1 else f"{name} / {model}"] = _word(delta, spread)
            lines.append(
                f"`{name}` / {model}: Oracle {_f(_box_value(ours, name, 'Oracle', model, metric))}"
                f", best distilled {best_m} {_f(got[best_m])} vs the teacher's {_f(zs)} "
                f"({_signed(delta)}); CF {_signed(got['TTA+WBF+CF'] - got['TTA+WBF'])}, "
                f"TR {_signed(got['TTA+WBF+CF+TR'] - got['TTA+WBF+CF'])}"
            )
    if not lines:
        return f"**What to look at:** no trained row has a box {metric}."
    beat = [k for k, w in words.items() if w == "helps"]
    below = [k for k, w in words.items() if w == "hurts"]
    close = [k for k, w in words.items() if w in ("noise", "none")]
    where = []
    if below:
        where.append(f"below it on {_ticks(below)}")
    if close:
        where.append(f"inside the seed spread on {_ticks(close)}")
    rest = f" ({'; '.join(where)})" if where else ""
    if len(beat) == len(words):
        verdict = (
            f"**the best distilled student beats the teacher on all {len(words)}** (beyond the "
            "seed spread): distillation pays off here."
        )
    elif not beat:
        verdict = (
            f"**no distilled student beats the teacher beyond the seed spread**{rest}: "
            "distillation does not improve on the teacher here."
        )
    else:
        verdict = (
            f"**the best distilled student beats the teacher on {len(beat)} of {len(words)}** "
            f"({_ticks(beat)}){rest}."
        )
    return (
        f"**What to look at:** box {metric} of each row.\n\n"
        + _bullets(lines)
        + f"\n\nVerdict: {verdict}"
    )


def convergence(
    curve: pd.DataFrame, teacher_ap: Mapping[str, float], flat: float = 1.0, last: int = 2
) -> str:
    """The Oracle's gain over its ``last`` checkpoint intervals per dataset, and the verdict:
    more than ``flat`` AP gained means it is still rising (not converged: more training would
    change the comparison), otherwise flat; one checkpoint cannot tell."""
    lines, gains, points = [], {}, {}
    for name, d in curve.groupby("dataset", sort=False) if len(curve) else []:
        d = d.sort_values("epoch", kind="stable").drop_duplicates("epoch", keep="last")
        end, start = d.iloc[-1], d.iloc[-1 - min(last, len(d) - 1)]
        gains[name], points[name] = end["AP"] - start["AP"], len(d)
        lines.append(
            f"`{name}`: Oracle box AP {_f(end['AP'])} after {int(end['epoch'])} epochs "
            f"({_signed(gains[name])} since epoch {int(start['epoch'])}); teacher zero-shot "
            f"{_f(teacher_ap.get(name, math.nan))}"
        )
    if not lines:
        return "**What to look at:** no checkpoint was saved, so there is no curve."
    rising = [n for n, g in gains.items() if g > flat]
    shown = "/".join(_signed(g) for g in gains.values())
    if max(points.values()) < 2:
        verdict = (
            "**one checkpoint only: no curve, so convergence cannot be judged** (neither flat "
            "nor rising); save checkpoints more often (`save_period`) to see it."
        )
    elif rising:
        verdict = (
            f"**still rising on {_ticks(rising)} ({shown} AP over the last checkpoints, more "
            f"than {_f(flat)} counts as rising): not converged, so more training would change "
            "the comparison**; the rows of Table III are compared at equal, insufficient training."
        )
    else:
        verdict = (
            f"**flat everywhere ({shown} AP over the last checkpoints, at most {_f(flat)}): "
            "converged at this budget**; more training would not change the comparison."
        )
    return (
        "**What to look at:** the gain of the last checkpoints over the ones before.\n\n"
        + _bullets(lines)
        + f"\n\nVerdict: {verdict}"
    )


def relabel_one_image(
    score: float,
    thetas: Mapping[str, float],
    kept: bool,
    train_images: int,
    total_images: int,
    iou_teacher: float = math.nan,
    iou_student: float = math.nan,
    same: float = 0.01,
) -> str:
    """One image's relabel: its score against round 1's theta per dataset, whether it passes,
    how many images round 1 trains on, and the verdict: is the student's relabel closer to the
    hidden true box than the teacher's label (box IoUs; ``same`` apart counts as equal)?"""
    theta = ", ".join(f"{n} {_f(t, 3)}" for n, t in thetas.items())
    head = (
        f"**What to look at:** the student's relabel scores {_f(score, 3)} against round 1's θ "
        f"of {theta}; it is {'kept' if kept else 'dropped'}, and round 1 trains on "
        f"{train_images} of {total_images} images."
    )
    if _nan(score):
        verdict = "**the student gave this image no label**, so round 1 cannot train on it."
    elif _nan(iou_teacher) or _nan(iou_student):
        verdict = f"**{'kept' if kept else 'dropped'}**; no box to compare with the truth."
    else:
        gap = iou_student - iou_teacher
        fit = (
            "**closer to the truth than the teacher's label**"
            if gap > same
            else "**further from the truth than the teacher's label**"
            if gap < -same
            else "**as close to the truth as the teacher's label**"
        )
        verdict = (
            f"the relabel is {fit} (box IoU {_f(iou_student, 3)} vs {_f(iou_teacher, 3)}) and is "
            f"{'kept: round 1 learns from it' if kept else 'dropped: round 1 never sees it'}."
        )
    return f"{head}\n\nVerdict: {verdict}"


_LABEL_COLUMNS = ("label_box_iou", "kept_images", "dataset_images")


def _range_spread(r: pd.Series) -> float:
    return r["max"] - r["min"] if r["count"] > 1 else math.nan


def relabel_rounds(relabel: pd.DataFrame, metric: str = "AP75") -> str:
    """Test box ``metric`` per relabel round, per dataset and student (the mean over a ``seed``
    column when there is one, with the seed range); with ``label_box_iou``, ``kept_images`` and
    ``dataset_images`` columns also the training labels' box IoU and the share of images kept.
    Verdict per dataset and student: the last round against round 0, inside or beyond the seed
    spread (the larger max - min of the two rounds)."""
    box = relabel[relabel["task"] == "box"] if "task" in relabel else relabel.iloc[:0]
    if box.empty:
        return "**What to look at:** no relabel round was trained."
    keys = ["dataset", "student", "round"]
    m = box.groupby(keys, sort=False)[metric].agg(["mean", "min", "max", "count"]).reset_index()
    labels = set(_LABEL_COLUMNS) <= set(box.columns)
    if labels:
        lab = box.groupby(keys, sort=False)[list(_LABEL_COLUMNS)].mean()

    def one(r) -> str:
        spread = f" (seeds {_f(r['min'])}–{_f(r['max'])})" if r["count"] > 1 else ""
        return f"round {int(r['round'])} {_f(r['mean'])}{spread}"

    students = m["student"].drop_duplicates()
    lines, words = [], {}
    for (name, student), d in m.groupby(["dataset", "student"], sort=False):
        d = d.sort_values("round")
        text = f"`{name}` / {student}: " + ", ".join(one(r) for _, r in d.iterrows())
        first, final = d.iloc[0], d.iloc[-1]
        if labels:
            a = lab.loc[(name, student, first["round"])]
            b = lab.loc[(name, student, final["round"])]
            share = [100 * x["kept_images"] / x["dataset_images"] for x in (a, b)]
            text += (
                f"; training labels' box IoU {_f(a['label_box_iou'], 3)} → "
                f"{_f(b['label_box_iou'], 3)} on {_f(share[0], 0)} % → {_f(share[1], 0)} % of "
                "the images"
            )
        if len(d) > 1:
            delta = final["mean"] - first["mean"]
            spreads = [s for s in map(_range_spread, (first, final)) if not math.isnan(s)]
            spread = max(spreads) if spreads else math.nan
            key = name if len(students) == 1 else f"{name} / {student}"
            words[key] = _word(delta, spread)
            text += (
                f"; round {int(final['round'])} vs round 0 {effect(delta, spread, '')}: "
                f"**TR{_WORDS[words[key]]}**"
            )
        lines.append(text)
    if words:
        verdict = "does relabelling help? " + _answer(words, "TR")
    else:
        verdict = "**one round only: nothing was relabelled, so TR cannot be judged.**"
    return (
        f"**What to look at:** test box {metric} per round.\n\n"
        + _bullets(lines)
        + f"\n\nVerdict: {verdict}"
    )


def _oracle_rows(
    ours: pd.DataFrame, teacher: str, model: str, metric: str = "AP"
) -> list[tuple[str, str, str]]:
    """(dataset, line, word) per dataset with an Oracle row; word: bound / not / close."""
    out = []
    rows = ["TTA+WBF", "TTA+WBF+CF", "TTA+WBF+CF+TR"]
    for name in ours["dataset"].drop_duplicates():
        oracle = _box_value(ours, name, "Oracle", model, metric)
        if math.isnan(oracle):
            continue
        own = _box_value(ours, name, "Oracle", model, f"{metric} spread")
        rivals = {
            f"the teacher `{teacher}`": (
                _box_value(ours, name, "teacher zero-shot", teacher, metric),
                math.nan,
            )
        }
        for m in rows:
            rivals[m] = (
                _box_value(ours, name, m, model, metric),
                _box_value(ours, name, m, model, f"{metric} spread"),
            )
        known = {k: v for k, v in rivals.items() if not math.isnan(v[0])}
        if not known:
            continue
        who, (v, theirs) = max(known.items(), key=lambda kv: kv[1][0])
        spreads = [s for s in (own, theirs) if not math.isnan(s)]
        spread = max(spreads) if spreads else math.nan
        diff = oracle - v
        head = f"`{name}`: the Oracle ({_f(oracle)} box {metric})"
        if not math.isnan(spread) and abs(diff) <= spread:
            line = (
                f"{head} and {who} ({_f(v)}) differ by {effect(diff, spread)}: **too close to "
                "call: inside the seed spread**"
            )
            word = "close"
        elif diff < 0:
            line = (
                f"{head} is below {who} ({_f(v)}), {effect(diff, spread)}: **not an upper bound "
                "at this budget**"
            )
            word = "not"
        else:
            line = (
                f"{head} is above the teacher and every distilled row, by {effect(diff, spread)} "
                f"over {who}: **an upper bound here**"
            )
            word = "bound"
        out.append((name, line, word))
    return out


def oracle_bound(ours: pd.DataFrame, teacher: str, model: str, metric: str = "AP") -> list[str]:
    """Per dataset: does the Oracle (trained on ground truth) bound the teacher and the
    distilled rows at this budget? The best row above it is named; a difference inside the
    seed spread is too close to call."""
    return [line for _, line, _ in _oracle_rows(ours, teacher, model, metric)]


def _oracle_answer(rows: list[tuple[str, str, str]]) -> str:
    if not rows:
        return "**not measured**: no Oracle row."
    phrases = {
        "bound": "an upper bound on",
        "not": "below another row on",
        "close": "inside the seed spread of the best row on",
    }
    yes = f"the Oracle is an upper bound on all {len(rows)} datasets."
    return _yes_partly_no({n: v for n, _, v in rows}, phrases, "bound", "the Oracle is", yes)


def _spread(ours: pd.DataFrame, name: str, methods: Iterable[str], model: str, col: str) -> float:
    """The larger seed spread of the rows compared (NaN when none has one)."""
    values = [_box_value(ours, name, m, model, f"{col} spread") for m in methods]
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def row_effect(
    ours: pd.DataFrame, name: str, model: str, before: str, after: str, metric: str = "AP75"
) -> tuple[float, float]:
    """(box ``metric`` of row ``after`` minus row ``before``, their larger seed spread)."""
    delta = _box_value(ours, name, after, model, metric) - _box_value(
        ours, name, before, model, metric
    )
    return delta, _spread(ours, name, (before, after), model, metric)


def _filter_rows(
    ours: pd.DataFrame, cf: pd.DataFrame, model: str, metric: str = "AP75"
) -> list[tuple[str, str, str]]:
    """(dataset, line, word) per row of the CF table (one rule)."""
    _need(cf, ["dataset", "train images", "kept", "box IoU all", "box IoU kept"], "the CF table")
    out = []
    for _, r in cf.iterrows():
        delta, spread = row_effect(ours, r["dataset"], model, "TTA+WBF", "TTA+WBF+CF", metric)
        dropped = 100 * (1 - r["kept"] / r["train images"]) if r["train images"] else math.nan
        paper = ""
        if "paper kept %" in cf and not _nan(r["paper kept %"]):
            paper = f" (the paper's filter: {_f(100 - r['paper kept %'], 0)} %)"
        word = _word(delta, spread)
        out.append(
            (
                r["dataset"],
                f"`{r['dataset']}`: label box IoU {_f(r['box IoU all'], 3)} → "
                f"{_f(r['box IoU kept'], 3)} "
                f"({_signed(100 * (r['box IoU kept'] - r['box IoU all']))} points), "
                f"{_f(dropped, 0)} % of the images dropped{paper}, student box {metric} "
                f"{effect(delta, spread, '')}: **CF{_WORDS[word]}**",
                word,
            )
        )
    return out


def filter_verdicts(
    ours: pd.DataFrame, cf: pd.DataFrame, model: str, metric: str = "AP75"
) -> list[str]:
    """Per dataset, what the confidence filter did: the labels' mean box IoU before and after,
    the share of images it dropped (and the paper's, with a ``paper kept %`` column), and the
    student's change (TTA+WBF -> TTA+WBF+CF) against the seed spread. ``cf``: dataset,
    ``train images``, ``kept``, ``box IoU all``, ``box IoU kept`` (one row per dataset)."""
    return [line for _, line, _ in _filter_rows(ours, cf, model, metric)]


def _filter_answer(rows: list[tuple[str, str, str]], cf: pd.DataFrame) -> str:
    answer = _answer({n: w for n, _, w in rows}, "CF")
    total = cf["train images"].sum() if len(cf) else 0
    if total:
        answer += f" It keeps {_f(100 * cf['kept'].sum() / total, 0)} % of the images"
        if "paper kept %" in cf:
            answer += f" (the paper's filter kept {_f(cf['paper kept %'].iloc[0], 0)} %)"
        answer += "."
    return answer


def filter_outcome(
    ours: pd.DataFrame, cf: pd.DataFrame, model: str, rule: str, metric: str = "AP75"
) -> str:
    """Notebook 03's answer to "does CF help?" for one student ``model``, from its Table III
    (``ours``) and the CF table of ``rule`` (``cf``), for notebook 04 to link back to."""
    rows = _filter_rows(ours, cf, model, metric)
    head = f"**Notebook 03's outcome ({model}, θ: `{rule}`):** does CF help? "
    if not rows:
        return head + "not measured: the CF table is empty."
    return head + _filter_answer(rows, cf) + "\n\n" + _bullets(line for _, line, _ in rows)


def _relabel_rows(
    ours: pd.DataFrame, model: str, metric: str = "AP75", rounds: pd.DataFrame | None = None
) -> list[tuple[str, str, str]]:
    """(dataset, line, word) per dataset: TR's change over CF; with ``rounds`` (notebook 03's
    relabel table of this student, label columns included) also the labels' IoU and images."""
    out = []
    labels = rounds is not None and set(_LABEL_COLUMNS) <= set(rounds.columns)
    for name in ours["dataset"].drop_duplicates():
        delta, spread = row_effect(ours, name, model, "TTA+WBF+CF", "TTA+WBF+CF+TR", metric)
        if math.isnan(delta):
            continue
        extra = ""
        if labels:
            d = rounds[(rounds["dataset"] == name) & (rounds["task"] == "box")]
            if len(d) and d["round"].nunique() > 1:
                by = d.groupby("round")[list(_LABEL_COLUMNS)].mean().sort_index()
                a, b = by.iloc[0], by.iloc[-1]
                extra = (
                    f"label box IoU {_f(a['label_box_iou'], 3)} → {_f(b['label_box_iou'], 3)} "
                    f"({_signed(100 * (b['label_box_iou'] - a['label_box_iou']))} points), "
                    f"images kept {_f(100 * a['kept_images'] / a['dataset_images'], 0)} % → "
                    f"{_f(100 * b['kept_images'] / b['dataset_images'], 0)} %, "
                )
        word = _word(delta, spread)
        out.append(
            (
                name,
                f"`{name}`: {extra}student box {metric} {effect(delta, spread, '')}: "
                f"**TR{_WORDS[word]}**",
                word,
            )
        )
    return out


def relabel_verdicts(
    ours: pd.DataFrame, model: str, metric: str = "AP75", rounds: pd.DataFrame | None = None
) -> list[str]:
    """Per dataset, TR's change over CF (TTA+WBF+CF -> TTA+WBF+CF+TR) against the seed spread;
    with ``rounds`` (the relabel table of this student) also the labels' IoU and images kept."""
    return [line for _, line, _ in _relabel_rows(ours, model, metric, rounds)]


def distillation_verdicts(
    ours: pd.DataFrame,
    teacher: str,
    model: str,
    cf: pd.DataFrame | None = None,
    metric: str = "AP75",
    rounds: pd.DataFrame | None = None,
) -> str:
    """The answers Table III exists for, per dataset and as one answer each: does the Oracle
    bound the students? does CF help (with ``cf``, the filter's table)? does TR (with
    ``rounds``, the relabel table of this student, also the relabels' quality)? Each sentence
    flips with its numbers."""
    oracle = _oracle_rows(ours, teacher, model, "AP")
    parts = [("Does the Oracle bound the students?", _oracle_answer(oracle), oracle)]
    if cf is not None and len(cf):
        rows = _filter_rows(ours, cf, model, metric)
        parts.append(("Does the confidence filter help?", _filter_answer(rows, cf), rows))
    rows = _relabel_rows(ours, model, metric, rounds)
    parts.append(("Does train relabelling help?", _answer({n: w for n, _, w in rows}, "TR"), rows))
    body = [
        f"*{q}* {answer}\n\n{_bullets(line for _, line, _ in rows)}"
        for q, answer, rows in parts
        if rows
    ]
    if not body:
        return f"**Verdicts ({model}):** no trained rows to compare."
    return f"**Verdicts ({model}):**\n\n" + "\n\n".join(body)


# ---------------------------------------------------------------------------- 04 figures
def box_fit(fit: pd.DataFrame, tight: float = 0.9, loose: float = 1.1) -> str:
    """Figure 3 in numbers: per dataset and predictor (``who``), the median area of the top box
    over the true box's; below ``tight`` it is too tight (appendages cut off), above ``loose`` it
    leaks onto the background. ``fit``: dataset, who, ``area ratio``, IoU (one row per image)."""
    _need(fit, ["dataset", "who", "area ratio", "IoU"], "the box-fit table")
    if fit.empty:
        return "**What to look at:** no test image has both a true box and a prediction."
    m = fit.groupby(["dataset", "who"], sort=False)[["area ratio", "IoU"]].median()
    lines, verdicts = [], []
    for (name, who), r in m.iterrows():
        ratio = r["area ratio"]
        if ratio < tight:
            how = "too tight: parts of the spacecraft (thin antennas, booms) lie outside it"
        elif ratio > loose:
            how = "too loose: it leaks onto the background"
        else:
            how = "the right size"
        lines.append(
            f"`{name}` / {who}: median area {_f(100 * ratio, 0)} % of the true box, IoU "
            f"{_f(r['IoU'], 2)}: {how}"
        )
        verdicts.append(ratio < tight)
    n_tight = sum(verdicts)
    verdict = (
        f"**{n_tight} of {len(verdicts)} are too tight**: the visible failure of Figure 3 is "
        "missing appendages, not boxes on the background."
        if n_tight > len(verdicts) / 2
        else f"**{n_tight} of {len(verdicts)} are too tight**: tightness is not the main failure."
    )
    return "**What to look at:** the fit of the top box.\n\n" + _bullets(lines) + f"\n\n{verdict}"


def confidence_informative(rho: Mapping[str, float], informative: float = 0.3) -> str:
    """Spearman ρ of confidence and IoU per dataset, and the verdict: at least ``informative`` is
    informative enough to filter on; below it (or negative) filtering is close to dropping
    images at random."""
    if not rho:
        return "**What to look at:** no dataset had labels to correlate."
    good = [n for n, r in rho.items() if not math.isnan(r) and r >= informative]
    weak = [n for n in rho if n not in good]
    lines = [
        f"`{n}` ρ = {_f(r, 2)}: {'informative' if n in good else 'weak'}" for n, r in rho.items()
    ]
    verdict = (
        f"**the confidence is informative (ρ ≥ {informative}) on {len(good)} of {len(rho)} "
        "datasets**"
        + (
            f"; on {', '.join(f'`{n}`' for n in weak)} a filter on it is little better than "
            "dropping images at random, so it can only cost training data there."
            if weak
            else "."
        )
    )
    return (
        "**What to look at:** the rank correlation of confidence and true box IoU.\n\n"
        + _bullets(lines)
        + f"\n\nVerdict: {verdict}"
    )


def label_iou_summary(summary: pd.DataFrame, same: float = 0.005) -> str:
    """Mean box IoU per label set (columns, in refinement order) and dataset (index), plus kept
    share and rho when present. Verdict per refinement step (each column against the one before
    it): does it improve the labels by more than ``same``?"""
    extras = ("theta", "kept by CF %", "Spearman rho")
    sets = [c for c in summary.columns if c not in extras]
    if summary.empty or not sets:
        return "**What to look at:** no label set to compare."
    lines = []
    for name, r in summary.iterrows():
        shown = ", ".join(f"{c} {_f(r[c], 3)}" for c in sets)
        extra = ""
        if "kept by CF %" in summary:
            extra += f"; CF keeps {_f(r['kept by CF %'])} %"
        if "Spearman rho" in summary:
            extra += f", ρ = {_f(r['Spearman rho'], 2)}"
        lines.append(f"`{name}`: {shown}{extra}")
    steps = [
        _label_change((summary[b] - summary[a]).to_dict(), f"{a} → {b}", same)
        for a, b in zip(sets, sets[1:], strict=False)
    ]
    verdict = " ".join(steps) if steps else "one label set only: no step to judge."
    return (
        "**What to look at:** mean box IoU of the labels at each step.\n\n"
        + _bullets(lines)
        + f"\n\nVerdict: {verdict}"
    )


def theta_sweep(cf: pd.DataFrame, paper_kept: Iterable[float] = ()) -> str:
    """Notebook 03's CF table read back for the θ sweep: per dataset, θ and the share of images
    each rule keeps (``rule``, ``theta``, ``kept``, ``train images`` columns), and per rule the
    verdict against the paper's kept shares (``paper_kept``: percent, one per dataset)."""
    _need(cf, ["dataset", "rule", "theta", "kept", "train images"], "the CF table")
    if cf.empty:
        return "**What to look at:** no dataset had labels to filter."
    rules = list(cf["rule"].drop_duplicates())
    share = 100 * cf["kept"] / cf["train images"].where(cf["train images"] > 0)
    cf = cf.assign(share=share)
    lines = [
        f"`{name}`: "
        + "; ".join(
            f"`{r['rule']}` θ = {_f(r['theta'], 3)}, {_f(r['share'], 0)} % kept"
            for _, r in d.iterrows()
        )
        for name, d in cf.groupby("dataset", sort=False)
    ]
    verdicts = [
        _kept_share_verdict(cf.loc[cf["rule"] == rule, "share"], paper_kept, rule) for rule in rules
    ]
    return (
        "**What to look at:** each rule's point on the curves (★ the params' rule, ◆ `mean`).\n\n"
        + _bullets(lines)
        + "\n\nVerdict: "
        + "; ".join(verdicts)
        + "."
    )


# ---- 05 debris tracking
def _need(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """KeyError naming the columns of ``what`` that ``df`` lacks."""
    if missing := _missing(df, columns):
        raise KeyError(f"{what} needs column(s) {', '.join(map(repr, missing))}")


def debris_splits(splits: pd.DataFrame) -> str:
    """The simulated splits: frames, debris boxes per frame and tracks per video."""
    _need(splits, ["split", "videos", "frames", "debris boxes", "tracks"], "debris_splits")
    if splits.empty:
        return "**What to look at:** no split was simulated."
    per_video = splits.set_index("split")["tracks"] / splits.set_index("split")["videos"]
    lines = [
        f"`{r['split']}`: {int(r['videos'])} videos, {int(r['frames'])} frames, "
        f"{_f(r['debris boxes'] / max(r['frames'], 1), 2)} debris per frame, "
        f"{_f(r['tracks'] / max(r['videos'], 1))} tracks per video"
        for r in splits.to_dict("records")
    ]
    tail = ""
    if {"test_sparse", "test_dense"} <= set(per_video.index):
        tail = (
            f"\n\nThe dense test split holds {_f(per_video['test_dense'])} tracks per video "
            f"against {_f(per_video['test_sparse'])} in the sparse one, placed in crossing pairs."
        )
    return "**What to look at:** how crowded each split is.\n\n" + _bullets(lines) + tail


def zscale_frame(stats: pd.DataFrame) -> str:
    """The ZScale walk-through (eqs. 1-3) on one raw frame: one row with ``k``, ``median``,
    ``std``, ``z1``, ``z2``, ``min``, ``max``, ``below z1 %``, ``above z2 %`` and
    ``max |diff| stored`` (the by-hand stretch against the 8-bit frame on disk)."""
    cols = ["k", "median", "std", "z1", "z2", "min", "max", "below z1 %", "above z2 %"]
    _need(stats, [*cols, "max |diff| stored"], "zscale_frame")
    if stats.empty:
        return "**What to look at:** no frame was stretched."
    r = stats.iloc[0]
    return (
        f"**What to look at:** the raw frame spans {_f(r['min'], 0)}–{_f(r['max'], 0)} counts, "
        f"but its median is {_f(r['median'])} and its std {_f(r['std'])}, so with k = "
        f"{_f(r['k'])} the stretch keeps only [z1, z2] = [{_f(r['z1'])}, {_f(r['z2'])}]: "
        f"{_f(r['below z1 %'], 2)} % of the pixels are clipped to 0 and {_f(r['above z2 %'], 2)} "
        "% to 255 (stars, hot pixels, cosmic rays and the debris themselves). A min–max stretch "
        "would spend almost all 256 grey levels on those few bright pixels and leave the faint "
        "streaks black. The by-hand stretch equals `zscale` on every pixel (asserted) and "
        f"differs from the stored 8-bit frame, stretched before the counts were rounded to "
        f"16-bit integers, by at most {_f(r['max |diff| stored'], 0)} grey level(s)."
    )


def debris_motion(track: pd.DataFrame, speed: tuple[float, float]) -> str:
    """One ground-truth track's per-frame steps (eq. 5): columns ``frame``, ``v`` (pixels per
    frame) and ``theta`` (degrees), NaN on the first frame; ``speed`` is the simulator's range."""
    _need(track, ["frame", "v", "theta"], "debris_motion")
    steps = track.dropna(subset=["v", "theta"])
    if steps.empty:
        return "**What to look at:** the track is seen on a single frame, so it has no step."
    v = steps["v"]
    dev = (steps["theta"] - steps["theta"].iloc[0] + 180) % 360 - 180  # circular, degrees
    th = steps["theta"].iloc[0] + dev.mean()
    th -= 360 * math.ceil((th - 180) / 360)  # in (-180, 180], as atan2
    wobble = v.max() - v.min()
    why = " (the json rounds endpoints to 0.01 px)" if wobble < 0.05 else ""
    inside = "inside" if speed[0] - 0.05 <= v.mean() <= speed[1] + 0.05 else "outside"
    return (
        f"**What to look at:** over {len(steps)} steps (frames {int(track['frame'].min())}–"
        f"{int(track['frame'].max())}) the centre moves v = {_f(v.mean(), 2)} px per frame "
        f"(min {_f(v.min(), 2)}, max {_f(v.max(), 2)}) at θ = {_f(th)}° "
        f"(spread {_f(dev.max() - dev.min(), 2)}°): a constant velocity, eq. (5) with Δt = 1, "
        f"{inside} the simulator's speed range [{_f(speed[0])}, {_f(speed[1])}]. The step "
        f"lengths differ by {_f(wobble, 2)} px{why}."
    )


def debris_labels(counts: pd.DataFrame, theta: float) -> str:
    """Boxes per split: ``ground truth``, ``teacher zero-shot``, ``teacher TTA+fusion`` and
    ``kept by CF`` (the training split only, NaN elsewhere); ``theta`` of the filter."""
    cols = ["split", "ground truth", "teacher zero-shot", "teacher TTA+fusion", "kept by CF"]
    _need(counts, cols, "debris_labels")
    if counts.empty:
        return "**What to look at:** no split was labelled."
    lines = []
    for r in counts.to_dict("records"):
        gt = r["ground truth"]
        ratio = _f(r["teacher TTA+fusion"] / gt, 2) if gt else "n/a"
        line = (
            f"`{r['split']}`: {int(r['teacher zero-shot'])} boxes alone, "
            f"{int(r['teacher TTA+fusion'])} after TTA+fusion ({ratio} per true debris) "
            f"for {int(gt)} true debris"
        )
        if not pd.isna(r["kept by CF"]):
            share = 100 * r["kept by CF"] / max(r["teacher TTA+fusion"], 1)
            line += f"; CF at θ = {_f(theta, 3)} keeps {int(r['kept by CF'])} ({_f(share)} %)"
        lines.append(line)
    return (
        "**What to look at:** how many labels the teacher gives per true debris (above 1: "
        "stars or noise labelled too; below 1: faint debris missed).\n\n" + _bullets(lines)
    )


def debris_train_sets(sets: pd.DataFrame) -> str:
    """The students' training sets: columns ``training set``, ``images``, ``boxes``."""
    _need(sets, ["training set", "images", "boxes"], "debris_train_sets")
    if sets.empty:
        return "**What to look at:** no training set was built."
    lines = [
        f"`{r['training set']}`: {int(r['boxes'])} boxes on {int(r['images'])} frames "
        f"({_f(r['boxes'] / max(r['images'], 1), 2)} per frame)"
        for r in sets.to_dict("records")
    ]
    return (
        "**What to look at:** the same frames, three label sets; the Oracle's are the truth, so "
        "the students' box counts against it show what the teacher and the filter add or drop. "
        "A frame without a label is left out of a student's set.\n\n" + _bullets(lines)
    )


def debris_mot_rows(long: pd.DataFrame) -> str:
    """The long MOT table: per split, the row with the best HOTA, and which of DetA and AssA
    (HOTA = sqrt(DetA * AssA)) limits the rows."""
    cols = ["detector", "tracker", "split", "MOTA", "IDF1", "IDS", "HOTA", "DetA", "AssA"]
    _need(long, cols, "debris_mot_rows")
    d = long.dropna(subset=["HOTA"])
    if d.empty:
        return "**What to look at:** no tracking row was scored."
    best = d.loc[d.groupby("split", sort=False)["HOTA"].idxmax()]
    lines = [
        f"`{r.split}`: best HOTA {_f(r.HOTA)} by {r.detector} + {r.tracker} (DetA {_f(r.DetA)}, "
        f"AssA {_f(r.AssA)}; MOTA {_f(r.MOTA)}, IDF1 {_f(r.IDF1)}, {int(r.IDS)} ID switches)"
        for r in best.itertuples()
    ]
    low_det = int((d["DetA"] < d["AssA"]).sum())
    return (
        f"**What to look at:** DetA is below AssA on {low_det} of {len(d)} rows; on those, "
        "finding the debris limits HOTA = √(DetA·AssA) more than keeping their identities."
        "\n\n" + _bullets(lines)
    )


def mot_cross_check(long: pd.DataFrame, atol: float = 1e-6) -> str:
    """trackeval against motmetrics: identical IDF1 and MOTA rows, and whether every MOTA
    difference equals the ID-switch difference over the ground-truth boxes."""
    cols = ["MOTA", "mm_MOTA", "IDF1", "mm_IDF1", "IDS", "mm_IDS", "CLR_TP", "CLR_FN"]
    _need(long, cols, "mot_cross_check")
    if long.empty:
        return "**What to look at:** no tracking row to cross-check."
    gt_boxes = (long["CLR_TP"] + long["CLR_FN"]).clip(lower=1)
    by_ids = -100 * (long["IDS"] - long["mm_IDS"]) / gt_boxes
    same_mota = np.isclose(long["MOTA"], long["mm_MOTA"], atol=atol)
    same_idf1 = np.isclose(long["IDF1"], long["mm_IDF1"], atol=atol)
    explained = np.isclose(long["MOTA"] - long["mm_MOTA"], by_ids, atol=atol)
    n = len(long)
    verdict = "yes" if explained.all() else f"no ({int((~explained).sum())} rows are not)"
    return (
        f"**What to look at:** trackeval and motmetrics give the same IDF1 on "
        f"{int(same_idf1.sum())} of {n} rows and the same MOTA on {int(same_mota.sum())} of {n}; "
        f"every MOTA difference is explained by the ID-switch counts: {verdict}."
    )


def debris_table(table: pd.DataFrame) -> str:
    """The wide tracking table: per split, our best row and the Oracle's best by HOTA, beside
    the paper's best row (rows whose ``source`` starts with ``paper``)."""
    _need(table, ["source", "detector", "tracker"], "debris_table")
    paper = table["source"].astype(str).str.startswith("paper")
    lines = []
    for split in ("sparse", "dense"):
        h, m = f"{split} HOTA", f"{split} MOTA"
        if h not in table or m not in table:
            continue
        parts = []
        for label, rows in (
            ("ours", table[~paper]),
            ("our Oracle", table[~paper & (table["detector"] == "Oracle")]),
            ("the paper's", table[paper]),
        ):
            rows = rows.dropna(subset=[h])
            if len(rows):
                r = rows.loc[rows[h].idxmax()]
                parts.append(
                    f"{label} best {r['detector']} + {r['tracker']} (HOTA {_f(r[h])}, "
                    f"MOTA {_f(r[m])})"
                )
        if parts:
            lines.append(f"`{split}`: " + "; ".join(parts))
    if not lines:
        return "**What to look at:** the table has no HOTA column to compare."
    return (
        "**What to look at:** the best row of each source per test split (by HOTA). The paper "
        "trains on labels and tracks full-size SDTD frames; compare the gaps, not the values."
        "\n\n" + _bullets(lines)
    )


def best_tracking_row(
    long: pd.DataFrame, split: str = "dense", exclude: Iterable[str] = ("Oracle",)
) -> pd.Series | None:
    """The row of the long MOT table (``detector``, ``tracker``, ``split``, ``HOTA``) with the
    highest HOTA on ``split`` among the detectors not in ``exclude``; None when there is none."""
    _need(long, ["detector", "tracker", "split", "HOTA"], "best_tracking_row")
    d = long[(long["split"] == split) & ~long["detector"].isin(list(exclude))]
    d = d.dropna(subset=["HOTA"])
    return None if d.empty else d.loc[d["HOTA"].idxmax()]


def tracks_shown(
    long: pd.DataFrame,
    detector: str,
    tracker: str,
    split: str = "dense",
    exclude: Iterable[str] = ("Oracle",),
) -> str:
    """Where the detector + tracker drawn in the tracks figure ranks by HOTA on ``split`` among
    the rows of the long MOT table whose detector is not in ``exclude`` (annotation-free)."""
    _need(long, ["detector", "tracker", "split", "HOTA"], "tracks_shown")
    d = long[(long["split"] == split) & ~long["detector"].isin(list(exclude))]
    d = d.dropna(subset=["HOTA"]).sort_values("HOTA", ascending=False, kind="stable")
    hit = d[(d["detector"] == detector) & (d["tracker"] == tracker)]
    if d.empty or hit.empty:
        return f"**Shown:** {detector} + {tracker}, which has no {split} HOTA to rank."
    value, n = float(hit["HOTA"].iloc[0]), len(d)
    above = int((d["HOTA"] > value + 1e-9).sum())
    tied = int(np.isclose(d["HOTA"], value, atol=1e-9).sum()) - 1
    pairs = f"the {n} annotation-free detector and tracker pairs on the {split} split"
    with_ties = f" (tied with {tied})" if tied else ""
    if tied == n - 1:
        where = f"one of {pairs}, which all score the same"
    elif above == 0:
        where = f"the **best**{with_ties} of {pairs}"
    elif above + tied == n - 1:
        where = f"the **worst**{with_ties} of {pairs}"
    else:
        where = f"number {above + 1}{with_ties} of {pairs}"
    return (
        f"**Shown:** {detector} + {tracker}, {where} (HOTA {_f(value)}; range "
        f"{_f(d['HOTA'].min())}–{_f(d['HOTA'].max())})."
    )


def debris_tracks(
    gt: pd.DataFrame,
    tracked: pd.DataFrame,
    video: str,
    frames: Iterable[int] | None = None,
    detector: str = "student +CF",
    tracker: str = "OC-SORT",
    confirms_on_second: bool = True,
) -> str:
    """The tracks figure: MOT rows (columns ``frame``, ``id``) of the truth and of the tracker
    on one video; ``frames``: the video's frame ids (default: those with a box); ``detector``
    and ``tracker``: the pair drawn; ``confirms_on_second``: the tracker reports a track only
    from its second box (the ``trackers`` library's; SDT-Net reports the first)."""
    _need(gt, ["frame", "id"], "debris_tracks (ground truth)")
    _need(tracked, ["frame", "id"], "debris_tracks (tracked)")
    if frames is None:
        frames = set(gt["frame"]) | set(tracked["frame"])
    frames = sorted(frames)
    g, t = gt.groupby("frame").size(), tracked.groupby("frame").size()
    same = sum(int(g.get(f, 0)) == int(t.get(f, 0)) for f in frames)
    return (
        f"**What to look at:** in `{video}` the truth holds {gt['id'].nunique()} debris tracks "
        f"({len(gt)} boxes); the {detector} + {tracker} reports {tracked['id'].nunique()} "
        f"identities ({len(tracked)} boxes), and the box count matches the truth on {same} of "
        f"{len(frames)} frames. More identities than debris means broken or spurious tracks, "
        "fewer means debris never tracked"
        + (
            "; a track's first frame is never reported (the tracker confirms it on the second)."
            if confirms_on_second
            else "."
        )
    )


def debris_sdtnet(long: pd.DataFrame) -> str:
    """SDT-Net's rows against the box detectors' in the long MOT table (``detector``,
    ``tracker``, ``split``, ``HOTA``, ``MOTA``): per split, the annotation-free SDT-Net against
    the best annotation-free box detector + tracker, the SDT-Net Oracle against the best YOLO
    Oracle + tracker, and the ablation rows (detectors ``SDT-Net Oracle (a) ...``)."""
    _need(long, ["detector", "tracker", "split", "HOTA", "MOTA"], "debris_sdtnet")
    d = long.dropna(subset=["HOTA"])
    is_sdt = d["detector"].str.startswith("SDT-Net")
    is_oracle = d["detector"].str.contains("Oracle")
    lines = []
    for split in d["split"].unique():
        here = d["split"] == split
        sdt = d[here & (d["detector"] == "SDT-Net")]
        boxes = d[here & ~is_sdt & ~is_oracle]
        parts = []
        if len(sdt) and len(boxes):
            b = boxes.loc[boxes["HOTA"].idxmax()]
            h = float(sdt["HOTA"].iloc[0])
            parts.append(
                f"the annotation-free SDT-Net has HOTA {_f(h)} (MOTA {_f(sdt['MOTA'].iloc[0])}) "
                f"against {_f(b.HOTA)} (MOTA {_f(b.MOTA)}) for the best annotation-free box "
                f"detector and tracker ({b.detector} + {b.tracker}): {h - b.HOTA:+.1f} HOTA"
            )
        so = d[here & (d["detector"] == "SDT-Net Oracle")]
        yo = d[here & (d["detector"] == "Oracle")]
        if len(so) and len(yo):
            y = yo.loc[yo["HOTA"].idxmax()]
            h = float(so["HOTA"].iloc[0])
            parts.append(
                f"the SDT-Net Oracle {_f(h)} against the YOLO Oracle's {_f(y.HOTA)} (+ "
                f"{y.tracker}): {h - y.HOTA:+.1f}"
            )
        ablation = d[here & d["detector"].str.startswith("SDT-Net Oracle (")]
        if len(ablation):
            rows = ", ".join(
                f"{r.detector.removeprefix('SDT-Net Oracle ')} {_f(r.HOTA)}"
                for r in ablation.sort_values("detector").itertuples()
            )
            parts.append(
                f"the ablation on the ground truth: {rows}, (d) full {_f(so['HOTA'].iloc[0]) if len(so) else 'n/a'}"
            )
        if parts:
            lines.append(f"`{split}`: " + "; ".join(parts) + ".")
    if not lines:
        return "**What to look at:** no SDT-Net row was scored."
    return "**What to look at:**\n\n" + _bullets(lines)


def debris_targets(long: pd.DataFrame, diagnosis: pd.DataFrame, margin: float = 10.0) -> str:
    """SDT-Net's targets (issue #22) read off the long MOT table, with the measured reason for a
    miss. Targets: on the dense split the annotation-free SDT-Net beats the best distilled YOLO
    student + tracker (detectors ``student...``) by ``margin`` HOTA and the SDT-Net Oracle beats
    the YOLO Oracle; on the sparse split SDT-Net is no worse than the students. Beside them, not
    a target, the annotation-free SDT-Net against its own teacher + tracker (detectors
    ``teacher...``) on each split. ``long``: columns
    ``detector, tracker, split, HOTA, DetA, AssA``; ``diagnosis``: one row per ``network``
    (``SDT-Net``, ``SDT-Net Oracle``) and ``split`` with :func:`afss_utils.debris.sdtnet.
    detection_diagnosis`'s ``left peak recall``, ``right peak recall``, ``detection precision``
    and ``detection recall``."""
    _need(long, ["detector", "tracker", "split", "HOTA", "DetA", "AssA"], "debris_targets")
    _need(diagnosis, ["network", "split", "left peak recall", "detection recall"], "debris_targets")
    d = long.dropna(subset=["HOTA"])
    is_sdt, is_oracle = (
        d["detector"].str.startswith("SDT-Net"),
        d["detector"].str.contains("Oracle"),
    )

    def best(rows: pd.DataFrame):
        return None if rows.empty else rows.loc[rows["HOTA"].idxmax()]

    def row(split: str, sdt: str, boxes: pd.Series):
        here = d["split"] == split
        return best(d[here & (d["detector"] == sdt)]), best(d[here & boxes])

    students = ~is_sdt & ~is_oracle & d["detector"].str.startswith("student")
    yolo_oracle = d["detector"] == "Oracle"
    checks = [  # (what, split, SDT-Net row, its rival, the lead needed, the target in words)
        ("annotation-free SDT-Net, dense", "dense", "SDT-Net", students, margin, f"+{_f(margin)}"),
        ("SDT-Net Oracle, dense", "dense", "SDT-Net Oracle", yolo_oracle, 1e-9, "more"),
        ("annotation-free SDT-Net, sparse", "sparse", "SDT-Net", students, 0.0, "no less"),
    ]
    lines, missed = [], []
    for what, split, name, rivals, need, goal in checks:
        sdt, rival = row(split, name, rivals)
        if sdt is None or rival is None:
            continue
        lead = float(sdt.HOTA - rival.HOTA)
        lines.append(
            f"{what}: HOTA {_f(sdt.HOTA)} against {_f(rival.HOTA)} ({rival.detector} + "
            f"{rival.tracker}), {lead:+.1f}; target {goal}: "
            + ("**met**" if lead >= need else f"**missed by {_f(max(need, 0.0) - lead)}**")
        )
        if lead < need:
            missed.append((split, sdt, rival))
    if not lines:
        return "**Targets:** no SDT-Net row was scored."
    why = []
    for split, sdt, rival in missed:
        diag = diagnosis[(diagnosis["split"] == split) & (diagnosis["network"] == sdt.detector)]
        part = (
            f"{sdt.detector} on `{split}`: DetA {_f(sdt.DetA)} and AssA {_f(sdt.AssA)} against "
            f"{_f(rival.DetA)} and {_f(rival.AssA)}"
        )
        if len(diag):
            g = diag.iloc[0]
            part += (
                f"; given the true previous heatmap it finds {g['left peak recall']:.0%} of the "
                f"left endpoints and {g['right peak recall']:.0%} of the right ones, yet "
                f"{g['detection recall']:.0%} of the streaks as a correct pair (precision "
                f"{g['detection precision']:.0%})"
            )
        why.append(part)
    teachers = []
    for split in d["split"].unique():
        sdt, rival = row(split, "SDT-Net", d["detector"].str.startswith("teacher"))
        if sdt is not None and rival is not None:
            lead = float(sdt.HOTA - rival.HOTA)
            teachers.append(
                f"`{split}`: HOTA {_f(sdt.HOTA)} against {_f(rival.HOTA)} ({rival.detector} + "
                f"{rival.tracker}), {lead:+.1f}: " + ("above" if lead > 0 else "not above")
            )
    text = "**Targets** (issue #22, HOTA on the test splits):\n\n" + _bullets(lines)
    if teachers:
        text += (
            "\n\n**Not a target, as strict a rival:** the annotation-free SDT-Net against the "
            "teacher it learnt from, tracked by the same trackers:\n\n" + _bullets(teachers)
        )
    if why:
        text += "\n\n**Where a missed one is lost, measured:**\n\n" + _bullets(why)
    return text


def debris_mota_hota(long: pd.DataFrame) -> str:
    """The MOTA/HOTA bars: per split, the best and worst detector (mean over trackers) by HOTA,
    and the mean change of HOTA from the sparse to the dense split."""
    _need(long, ["detector", "split", "MOTA", "HOTA"], "debris_mota_hota")
    mean = long.groupby(["split", "detector"], sort=False)[["MOTA", "HOTA"]].mean()
    lines = []
    for split in long["split"].drop_duplicates():
        d = mean.loc[split].dropna(subset=["HOTA"])
        if d.empty:
            continue
        hi, lo = d["HOTA"].idxmax(), d["HOTA"].idxmin()
        lines.append(
            f"`{split}`: best {hi} (HOTA {_f(d.loc[hi, 'HOTA'])}, MOTA {_f(d.loc[hi, 'MOTA'])}), "
            f"worst {lo} (HOTA {_f(d.loc[lo, 'HOTA'])}, MOTA {_f(d.loc[lo, 'MOTA'])})"
        )
    if not lines:
        return "**What to look at:** no detector was scored."
    tail = ""
    if {"sparse", "dense"} <= set(long["split"]):
        h = mean["HOTA"].unstack("split")
        tail = (
            f"\n\nFrom sparse to dense, HOTA changes by {_signed((h['dense'] - h['sparse']).mean())}"
            " points on average over the detectors (crossing tracks are harder to keep apart)."
        )
    return (
        "**What to look at:** the order of the bars, and how much is lost on the dense split.\n\n"
        + _bullets(lines)
        + tail
    )


def stage_times(seconds: pd.Series) -> str:
    """Seconds per stage: the total and the largest stage with its share."""
    s = pd.Series(seconds, dtype=float).dropna()
    if s.empty:
        return "**What to look at:** no stage was timed."
    total = s.sum()
    top = s.idxmax()
    return (
        f"**What to look at:** the stage took {_f(total)} s; the largest part is `{top}` "
        f"({_f(s[top])} s, {_f(100 * s[top] / total if total else math.nan)} %)."
    )


# ---- 06 spacecraft classification
def _lacks(table: pd.DataFrame, columns: Iterable[str]) -> str | None:
    """The "nothing to say" sentence when ``table`` is empty or lacks one of ``columns``."""
    if missing := _missing(table, columns):
        return f"**What to look at:** the table lacks column(s) {', '.join(missing)}."
    if table.empty:
        return "**What to look at:** the table is empty."
    return None


def type_splits(counts: pd.DataFrame, domains: int = 1) -> str:
    """The type-split table (``split``, ``images`` and one count column per type): images per
    split and how evenly the types are spread (balanced: at most one image apart per domain,
    ``domains`` of them)."""
    if msg := _lacks(counts, ("split", "images")):
        return msg
    types = [c for c in counts.columns if c not in ("split", "images")]
    lines = [
        f"`{r['split']}`: {int(r['images'])} images"
        + (f", each type {int(r[types].min())}–{int(r[types].max())} times" if types else "")
        for _, r in counts.iterrows()
    ]
    spread = max((int(r[types].max() - r[types].min()) for _, r in counts.iterrows()), default=0)
    balance = (
        "balanced: every split holds every type equally often"
        if spread == 0
        else f"balanced: within every split the types' counts differ by at most {spread} (one "
        "image per domain)"
        if spread <= domains
        else "not balanced; a type with few training images is learnt worst"
    )
    return f"**What to look at:** {len(types)} types, {balance}.\n\n" + _bullets(lines)


def heatmap_by_hand(target: pd.DataFrame, sigma: float) -> str:
    """The (G, G) center target of one box (rows and columns are the cells): its peak cell, the
    value a direct neighbour gets and the cells inside the 3-sigma radius."""
    if target.empty:
        return "**What to look at:** the target grid is empty."
    t = target.to_numpy(dtype=float)
    r, c = divmod(int(t.argmax()), t.shape[1])
    return (
        f"**What to look at:** the ground-truth cell (row {r}, col {c}) holds {_f(t[r, c], 3)}; "
        f"a direct neighbour gets exp(−1/2σ²) = {_f(math.exp(-1 / (2 * sigma**2)), 3)} at "
        f"σ = {_f(sigma, 2)}; {int((t > 0).sum())} of {t.size} cells are non-zero (radius "
        f"3σ = {_f(3 * sigma, 2)} cells). Only the cell holding 1 is weighted by k."
    )


def loss_by_hand(terms: pd.DataFrame) -> str:
    """The loss terms of one image (index: the term; columns ``weight``, ``by hand``,
    ``package``): each weighted term and the total."""
    if msg := _lacks(terms, ("weight", "by hand", "package")):
        return msg
    weighted = terms["weight"] * terms["by hand"]
    parts = [
        f"{w:g} · {_f(v, 3)} ({name})"
        for name, w, v in zip(terms.index, terms["weight"], terms["by hand"], strict=True)
    ]
    gap = float((terms["by hand"] - terms["package"]).abs().max())
    return (
        f"**What to look at:** L = {' + '.join(parts)} = {_f(float(weighted.sum()), 3)}; the "
        f"largest weighted term is {weighted.idxmax()}. By hand and `center_loss` differ by at "
        f"most {gap:.1e} (float32 against float64)."
    )


def center_grid_search(trials: pd.DataFrame) -> str:
    """The staged grid search's trials: per stage, the best trial (validation box AP, ties by
    cell accuracy, as ``grid_search`` picks) and its hyper-parameters."""
    if msg := _lacks(trials, ("trial", "stage", "val_AP", "val_cell_accuracy")):
        return msg
    keys = [k for k in ("lr", "weight_decay", "sigma", "pos_weight", "box_weight") if k in trials]
    lines = []
    for stage, d in trials.groupby("stage", sort=True):
        top = d.sort_values(["val_AP", "val_cell_accuracy"], ascending=False, kind="stable")
        best = top.iloc[0]
        hyper = ", ".join(f"{k} = {best[k]:g}" for k in keys)
        lines.append(
            f"stage {int(stage)} ({len(d)} trials): trial {int(best['trial'])} ({hyper}), val "
            f"box AP {_f(best['val_AP'])}, cell accuracy {_f(best['val_cell_accuracy'], 2)}"
        )
    return (
        f"**What to look at:** {len(trials)} trials; each stage keeps its best values for the "
        "next, so the last stage's winner is the setting trained below.\n\n" + _bullets(lines)
    )


def center_history(history: pd.DataFrame, num_types: int | None = None) -> str:
    """The training history (``epoch``, ``loss``, ``center``, ``box``, ``cls``): each loss at the
    first and the last epoch, and the class term beside ln C (a head that guesses uniformly)."""
    if msg := _lacks(history, ("epoch", "loss", "center", "box", "cls")):
        return msg
    first, last = history.iloc[0], history.iloc[-1]
    names = (("center", "center"), ("box", "box"), ("cls", "class"))
    if len(history) == 1:
        terms = ", ".join(f"{name} {_f(last[k], 3)}" for k, name in names)
        text = (
            f"**What to look at:** after its only epoch the weighted loss is "
            f"{_f(last['loss'], 3)}; per term {terms}."
        )
    else:
        terms = ", ".join(f"{name} {_f(first[k], 3)} → {_f(last[k], 3)}" for k, name in names)
        text = (
            f"**What to look at:** the weighted loss went from {_f(first['loss'], 3)} (epoch "
            f"{int(first['epoch'])}) to {_f(last['loss'], 3)} (epoch {int(last['epoch'])}); "
            f"per term {terms}."
        )
    if num_types:
        text += (
            f" A class term near ln {num_types} = {_f(math.log(num_types), 3)} means the class "
            "head still guesses uniformly."
        )
    return text


def decode_by_hand(table: pd.DataFrame, kind: str) -> str:
    """One decoded image (index ``row, col, score, x1, y1, x2, y2``; columns ``by hand`` and
    ``predict``, the latter NaN when predict kept nothing): the argmax cell, its box and type."""
    rows = ["row", "col", "score", "x1", "y1", "x2", "y2"]
    if msg := _lacks(table, ("by hand", "predict")):
        return msg
    if any(r not in table.index for r in rows):
        return "**What to look at:** the table lacks the rows " + ", ".join(rows) + "."
    h, p = table["by hand"], table["predict"]
    box = ", ".join(_f(h[k]) for k in ("x1", "y1", "x2", "y2"))
    same = (
        "`predict` kept no detection for this image"
        if p[rows].isna().any()
        else f"`predict` gives the same box (within {float((h - p)[rows].abs().max()):.1e})"
    )
    return (
        f"**What to look at:** the argmax cell is (row {int(h['row'])}, col {int(h['col'])}) "
        f"with center probability {_f(h['score'], 3)}; its box, decoded to image pixels, is "
        f"[{box}] and its class head says `{kind}`; {same}."
    )


def center_classification(summary: pd.DataFrame, num_types: int | None = None) -> str:
    """The results table: each row of ours (``source`` starting with ``ours``) with its class and
    center-cell accuracy beside the report's row (``report``), its class-agnostic box AP and
    AP75, and how much tighter the last row's boxes are than the first's (AP75 ratio)."""
    cols = ("source", "class accuracy %", "center-cell accuracy")
    if msg := _lacks(summary, cols):
        return msg
    source = summary["source"].astype(str)
    ours, ref = summary[source.str.startswith("ours")], summary[source.str.startswith("report")]
    if ours.empty:
        return "**What to look at:** the table has no row of ours."
    r = ref.iloc[0] if len(ref) else pd.Series(dtype=float)
    chance = f" (chance: {_f(100 / num_types)} %)" if num_types else ""
    lines = []
    for _, o in ours.iterrows():
        line = (
            f"{o['source'].removeprefix('ours').strip(' :')}: class accuracy "
            f"**{_f(o['class accuracy %'])} %**, center-cell accuracy "
            f"**{_f(o['center-cell accuracy'], 2)}**"
        )
        if {"box AP", "box AP75"} <= set(summary.columns):
            line += f", box AP {_f(o['box AP'])}, AP75 {_f(o['box AP75'])}"
        if "s / step" in summary.columns:
            line += f" ({_f(o['s / step'], 2)} s per step)"
        lines.append(line)
    text = (
        f"**What to look at:** against the report's ≈ {_f(r.get('class accuracy %', math.nan), 0)} "
        f"% class accuracy{chance} and {_f(r.get('center-cell accuracy', math.nan), 2)} "
        f"center-cell accuracy:\n\n" + _bullets(lines)
    )
    if len(ours) > 1 and "box AP75" in summary.columns:
        a, b = ours["box AP75"].iloc[0], ours["box AP75"].iloc[-1]
        if a > 0:
            text += (
                f"\n\nOn the same images and steps, the last row's box AP75 is {_f(b)} against "
                f"{_f(a)}: {_f(b / a)}× the first row's."
            )
        elif b > 0:
            text += f"\n\nOnly the last row has boxes at IoU 0.75 (AP75 {_f(b)} against 0)."
        else:
            text += "\n\nNeither row has a box at IoU 0.75 (AP75 0)."
    return text + (
        "\n\nThe report's numbers are on SPARK 2022 (11 classes, 50 epochs): a reference, not a "
        "like-for-like comparison."
    )


def center_per_class(per_class: pd.DataFrame) -> str:
    """Per-type accuracy (``type`` and one ``... accuracy %`` column per row of the results
    table; NaN: no test image of that type): best and worst type of each."""
    columns = [c for c in per_class.columns if str(c).endswith("accuracy %")]
    if msg := _lacks(per_class, ("type", *(columns or ["accuracy %"]))):
        return msg
    lines = []
    for col in columns:
        d = per_class.dropna(subset=[col])
        if d.empty:
            lines.append(f"{col.removesuffix('accuracy %').strip() or 'accuracy'}: no test image")
            continue
        hi, lo = d[col].max(), d[col].min()

        def names(value: float, d=d, col=col) -> str:
            return ", ".join(f"`{t}`" for t in d.loc[d[col] == value, "type"])

        label = col.removesuffix("accuracy %").strip()
        said = (
            f"every type {_f(hi)} %"
            if hi == lo
            else f"best {names(hi)} ({_f(hi)} %), worst {names(lo)} ({_f(lo)} %)"
        )
        lines.append((f"{label}: " if label else "") + said)
    absent = per_class.loc[per_class[columns].isna().all(axis=1), "type"].tolist()
    text = "**What to look at:** " + (
        "; ".join(lines) if len(lines) == 1 else "\n\n" + _bullets(lines)
    )
    if absent:
        text += f"\n\nNo test image of {', '.join(f'`{t}`' for t in absent)}."
    return text if len(lines) > 1 or absent else text + "."


def center_data_curve(curve: pd.DataFrame, target: float = 90.0) -> str:
    """The accuracy-vs-images curve (``train images``, ``epochs``, ``steps``, ``class accuracy
    %``, ``center-cell accuracy``), all rows at one step budget: what the distinct images
    bought, and where the class accuracy stands against ``target`` (%), extrapolating the images
    it would take along the line through the last two points (log images) when it still rises."""
    cols = ("train images", "epochs", "steps", "class accuracy %", "center-cell accuracy")
    if msg := _lacks(curve, cols):
        return msg
    c = curve.sort_values("train images")
    lo, hi = c.iloc[0], c.iloc[-1]
    steps = sorted(set(c["steps"].astype(int)))
    budget = f"{steps[0]} steps" if len(steps) == 1 else f"{steps[0]}–{steps[-1]} steps"

    def times(n) -> str:
        return "once" if int(n) == 1 else f"{int(n)} times"

    text = (
        f"**What to look at:** at {budget}, {int(lo['train images'])} images seen "
        f"{times(lo['epochs'])} give {_f(lo['class accuracy %'])} % class accuracy and "
        f"{_f(lo['center-cell accuracy'], 2)} center-cell accuracy; {int(hi['train images'])} "
        f"distinct images seen {times(hi['epochs'])} give "
        f"**{_f(hi['class accuracy %'])} %** and **{_f(hi['center-cell accuracy'], 2)}** "
        f"({_signed(hi['class accuracy %'] - lo['class accuracy %'])} points of class accuracy for "
        "the same cost)."
    )
    if hi["class accuracy %"] >= target:
        return text + f" The largest set reaches the {_f(target, 0)} % target."
    gap = f" The largest set stays {_f(target - hi['class accuracy %'])} points below {_f(target, 0)} %"
    if len(c) >= 2:
        prev = c.iloc[-2]
        decades = math.log10(hi["train images"] / prev["train images"])
        slope = (hi["class accuracy %"] - prev["class accuracy %"]) / decades if decades else 0
        if slope > 0:
            need = hi["train images"] * 10 ** ((target - hi["class accuracy %"]) / slope)
            return text + (
                f"{gap}; its last two points gain {_f(slope)} points per tenfold images, so "
                f"along that line it would take about {_f(need, 0)} images at this budget (an "
                "extrapolation: the steps may bind before the data does)."
            )
    return text + gap + "."


def center_confusion(confusion: pd.DataFrame) -> str:
    """The confusion matrix as counts (index: true type, columns: predicted type): the share on
    the diagonal and the most frequent confusion."""
    if confusion.empty or confusion.to_numpy().sum() == 0:
        return "**What to look at:** the confusion matrix is empty."
    c = confusion.to_numpy(dtype=int)
    total, right = int(c.sum()), int(sum(c[i, i] for i in range(min(c.shape))))
    off = c.copy()
    for i in range(min(c.shape)):
        off[i, i] = 0
    text = f"**What to look at:** {right} of {total} test images lie on the diagonal"
    if off.max() == 0:
        return text + "; no type was mistaken for another."
    i, k = divmod(int(off.argmax()), off.shape[1])
    return (
        text + f"; the most frequent confusion is `{confusion.index[i]}` read as "
        f"`{confusion.columns[k]}` ({int(off[i, k])} image{'s' if off[i, k] != 1 else ''})."
    )


def center_heatmaps(shown: pd.DataFrame) -> str:
    """The images of the heatmap figure (``image_id``, ``true type``, ``predicted type``,
    ``score``, ``cell``, ``true cell``): per image, type and cell right or wrong."""
    cols = ("image_id", "true type", "predicted type", "score", "cell", "true cell")
    if msg := _lacks(shown, cols):
        return msg
    typed = int((shown["true type"] == shown["predicted type"]).sum())
    celled = int(
        sum(tuple(a) == tuple(b) for a, b in zip(shown["cell"], shown["true cell"], strict=True))
    )
    lines = [
        f"image {r['image_id']}: `{r['true type']}` predicted `{r['predicted type']}` "
        f"(p = {_f(r['score'], 3)}), cell {tuple(r['cell'])} vs true {tuple(r['true cell'])}"
        for _, r in shown.iterrows()
    ]
    return (
        f"**What to look at:** {typed} of {len(shown)} shown types and {celled} of {len(shown)} "
        "center cells are right; a wrong cell shifts the green box, a right cell with a wrong "
        "type does not.\n\n" + _bullets(lines)
    )


def center_setup(arch: Mapping, hyper: Mapping, grid: Mapping) -> str:
    """Which network runs and which hyper-parameters lie outside the report's grid (Table 2.1).

    arch: ``backbone``, ``weights`` (None: random initialisation), ``imgsz``, optionally
    ``frozen_stages``; hyper: the values
    trained with (``lr``, ``weight_decay``, ``sigma``, ``pos_weight``, ``box_weight``); grid: the
    report's value lists per hyper-parameter."""
    if not arch or "backbone" not in arch:
        return "**Setup:** no backbone is given."
    weights = arch.get("weights")
    start = f"`{weights}` weights" if weights else "random initialisation (no weights)"
    imgsz = arch.get("imgsz")
    size = f" at S = {imgsz} px (a grid of {imgsz // 32}×{imgsz // 32} cells)" if imgsz else ""
    text = f"**Setup:** backbone `{arch['backbone']}` from {start}{size}."
    if frozen := arch.get("frozen_stages"):
        text += (
            f" Its stem and first {frozen} stage(s) keep the loaded weights (detectron2's "
            "`FREEZE_AT`): cheaper steps; the report trained every layer."
        )
    names = {"pos_weight": "k (pos_weight)", "sigma": "σ (sigma)"}
    outside, inside = [], []
    for key, values in grid.items():
        if key not in hyper:
            continue
        label = names.get(key, key)
        if any(math.isclose(float(hyper[key]), float(v)) for v in values):
            inside.append(label)
        else:
            grid_values = ", ".join(f"{float(v):g}" for v in values)
            outside.append(f"{label} = {float(hyper[key]):g} (grid: {grid_values})")
    if not outside and not inside:
        return text + " No hyper-parameter is compared with the report's grid."
    if outside:
        text += " **Outside** the report's Table 2.1 grid: " + "; ".join(outside)
        text += f". Inside: {', '.join(inside)}." if inside else "."
    else:
        text += f" Every hyper-parameter ({', '.join(inside)}) is one of the report's grid values."
    return text


def center_overfit(history: pd.DataFrame, test_accuracy: float, margin: float = 10.0) -> str:
    """The class head's fit against its test accuracy: the last epoch's training class loss
    (``cls``, a mean cross-entropy) turned into the true type's geometric-mean probability
    ``100 exp(-cls)`` %, against ``test_accuracy`` (%); overfitting when the first exceeds the
    second by more than ``margin`` points."""
    if msg := _lacks(history, ("epoch", "cls")):
        return msg
    if test_accuracy is None or math.isnan(test_accuracy):
        return "**What to look at:** there is no test accuracy to compare the training loss with."
    last = history.iloc[-1]
    fit = 100 * math.exp(-float(last["cls"]))
    gap = fit - test_accuracy
    said = (
        f"the training class loss of the last epoch ({int(last['epoch'])}) is "
        f"{_f(float(last['cls']), 3)}, i.e. the class head gives a training image's true type a "
        f"probability of about e^−{_f(float(last['cls']), 3)} = {_f(fit)} % (geometric mean), "
        f"while it names the type of {_f(test_accuracy)} % of the test images"
    )
    if gap > margin:
        return (
            f"**Overfitting:** {said}: a gap of {_f(gap)} points. The class head fits its "
            "training images far better than it recognises the types on new ones."
        )
    if gap < -margin:
        return (
            f"**No sign of overfitting:** {said}; the test images fare better than the loss "
            f"suggests ({_signed(gap)} points) because the loss is the mean over an epoch that "
            "began untrained" + (" (the only epoch here)." if int(last["epoch"]) == 1 else ".")
        )
    return (
        f"**No sign of overfitting:** {said}; the two agree within {_f(margin, 0)} points "
        f"({_signed(gap)})."
    )
