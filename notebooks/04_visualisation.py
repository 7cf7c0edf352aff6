# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Visual results and what the tables do not show
#
# *Reproduces:* **Fig. 3** (Section IV-G) of Hicsonmez et al., then looks behind eq. (6).
#
# **What you will see**
# 1. Figure 3: input, ground truth, the teacher's zero-shot prediction and the distilled student's.
# 2. How good the pseudo-labels are before and after TTA and CF, and whether confidence tracks IoU.
# 3. The θ sweep (images kept vs quality kept) beside notebook 03's verdict on CF, and test AP
#    over relabel rounds with its verdict on TR.
# 4. Test box AP against box size for the teacher, the Oracle and the distilled student.
#
# The paper closes with Figure 3. This notebook draws it from the files the earlier stages wrote,
# then asks four questions the tables leave open: how good the pseudo-labels are image by image;
# whether the confidence is informative enough to filter on (eq. 6 keeps $s^* \ge \theta$, which
# helps only if high $s^*$ means high IoU); which $\theta$; whether relabelling keeps helping; and
# which object sizes each model gets wrong.
#
# **Inputs:** `{out_dir}/predictions/` and `{out_dir}/tables/` from notebooks 01–03.
# **Outputs:** `{out_dir}/figures/figure3_visual_results.png`, `label_iou_histograms.png`,
# `confidence_vs_iou.png`, `theta_sweep.png`, `relabel_rounds.png`, `ap_vs_size.png`;
# `{out_dir}/tables/ap_by_size.csv` (and `.md`).

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter, NullFormatter

from afss_utils import coco, narrative, tables, viz
from afss_utils.coco import box_iou
from afss_utils.config import seed_everything
from afss_utils.datasets import open_split, pool
from afss_utils.distill import PAPER_KEPT_IMAGES, PAPER_KEPT_SHARE, confidence_filter
from afss_utils.evaluate import SIZE_BIN_EDGES, ap_by_size_bins

pd.set_option("display.width", 200)  # a wide table prints as one block of text, not wrapped

# %% tags=["parameters"]
# --- run ---------------------------------------------------------------------------------
seed = 0
out_dir = "results"  # where notebooks 01-03 wrote predictions/ and tables/
data_dir = "data/synthetic/default"
datasets = [
    {"name": "lightbox", "layout": "synthetic", "domain": "lightbox"},
    {"name": "sunlamp", "layout": "synthetic", "domain": "sunlamp"},
    {"name": "earth", "layout": "synthetic", "domain": "earth"},
]
# --- which files of notebook 03 to read --------------------------------------------------
pool_training = True
teacher = "classical_threshold"
students = ["yolo11_seg"]  # the first is drawn in Figure 3
confidence_threshold = "keep 0.85"  # theta of eq. (6)
relabel_rounds = 1

# %% [markdown]
# ## 1 · Figure 3: teacher versus student
#
# Rows are test images, three per dataset, picked at random with a fixed seed; columns are the
# image, the ground truth (green), the teacher's zero-shot prediction and the prediction of the
# final distilled student (the first of `students`, after CF and relabelling), with scores.

# %%
narrative.run_from_repo_root()
seed_everything(seed)
out = Path(out_dir)
pred_dir = out / "predictions"
test_sets = {spec["name"]: open_split(spec, "test", data_dir) for spec in datasets}
group_of = {name: "pooled" if pool_training else name for name in test_sets}
student = students[0]
final = "TTA+WBF+CF+TR" if relabel_rounds else "TTA+WBF+CF"
zs_file = {g: pred_dir / "teacher_test" / f"{g}_zero-shot.json" for g in set(group_of.values())}
st_file = {g: pred_dir / "students" / g / student / f"{final}.json" for g in zs_file}
oracle_file = {g: pred_dir / "students" / g / student / "Oracle.json" for g in zs_file}
tables_needed = [
    out / "tables" / f"{t}.csv"
    for t in ("pseudo_label_quality", "relabel_rounds", "confidence_filter", "table3_distillation")
]
narrative.require(
    [*zs_file.values(), *st_file.values(), *oracle_file.values(), *tables_needed],
    "03_distillation",
)


# %%
def figure3_row(ds, image_id, zero_shot, distilled):
    """One row of Figure 3: input, ground truth, teacher, student."""
    image = ds.load_image(image_id)
    return [
        ("input", image, None),
        ("ground truth", image, ds.annotations(image_id), viz.GT_COLOR),
        (f"teacher ({teacher})", image, zero_shot.get(image_id, [])[:1]),
        (f"student ({student}, {final})", image, distilled.get(image_id, [])[:1]),
    ]


# %%
rng = np.random.default_rng(seed)
grid, labels = [], []
for name, ds in test_sets.items():
    zero_shot = coco.results_by_image(zs_file[group_of[name]])
    distilled = coco.results_by_image(st_file[group_of[name]])
    for image_id in rng.choice(ds.image_ids, size=min(3, len(ds)), replace=False):
        grid.append(figure3_row(ds, int(image_id), zero_shot, distilled))
        labels.append(f"{name} #{int(image_id)}")
fig = viz.sample_grid(grid, row_labels=labels, cell_size=2.2)
viz.save_figure(fig, "figure3_visual_results", out_dir)
plt.show()

# %% [markdown]
# What the grid shows in numbers, over every test image: the top box's area as a share of the
# true box's area (below 1: too tight, the thin appendages such as antennas and booms cut off;
# above 1: leaking onto the background) and its IoU with the truth.

# %%
fit = []
for name, ds in test_sets.items():
    for who, found in (
        ("teacher", coco.results_by_image(zs_file[group_of[name]])),
        ("student", coco.results_by_image(st_file[group_of[name]])),
    ):
        for image_id in ds.image_ids:
            truth, top = ds.annotations(image_id), found.get(image_id, [])[:1]
            if not truth or not top:
                continue
            t, p = np.array(truth[0]["bbox"], float), np.array(top[0]["bbox"], float)
            xyxy = [np.r_[b[:2], b[:2] + b[2:]][None] for b in (p, t)]
            fit.append(
                {
                    "dataset": name,
                    "who": who,
                    "area ratio": p[2] * p[3] / (t[2] * t[3]),
                    "IoU": float(box_iou(*xyxy)[0, 0]),
                }
            )
fit = pd.DataFrame(fit, columns=["dataset", "who", "area ratio", "IoU"])
fit_summary = fit.groupby(["dataset", "who"])[["area ratio", "IoU"]].median().unstack("who")
fit_summary.round(3)

# %%
display(Markdown(narrative.box_fit(fit)))

# %% [markdown]
# ## 2 · Pseudo-label quality before and after TTA and CF
#
# Each training image's pseudo-label against the hidden ground truth (notebook 03 wrote the IoUs).
# Three label sets: the teacher's single view, the TTA-fused labels, and the fused labels that
# survive the confidence filter $s^* \ge \theta$ (eq. 6). A good refinement moves mass to the right.

# %%
quality = pd.read_csv(out / "tables" / "pseudo_label_quality.csv")
tta_q = quality[quality["labels"] == "tta"]


def theta_of(scores):
    """Eq. 6's theta for one dataset's label scores under the params' rule (as notebook 03)."""
    records = [{"image_id": 0, "bbox": [0, 0, 1, 1], "score": float(s)} for s in scores]
    return confidence_filter(records, confidence_threshold)[1]


# %%
theta = {n: theta_of(tta_q[tta_q["dataset"] == n]["score"].dropna()) for n in test_sets}
theta_mean = {n: tta_q[tta_q["dataset"] == n]["score"].mean() for n in test_sets}
kept_q = tta_q[tta_q["score"] >= tta_q["dataset"].map(theta)]
sets = {
    "single view": quality[quality["labels"] == "single"],
    "TTA+WBF": tta_q,
    "TTA+WBF+CF (θ per dataset)": kept_q,
}

# %%
fig, axes = plt.subplots(1, len(test_sets), figsize=(4.2 * len(test_sets), 3.2), squeeze=False)
bins = np.linspace(0, 1, 21)
for ax, name in zip(axes[0], test_sets, strict=True):
    for label, q in sets.items():
        ax.hist(q[q["dataset"] == name]["box_iou"], bins=bins, histtype="step", lw=1.5, label=label)
    ax.set(title=name, xlabel="box IoU with ground truth", ylabel="training images")
axes[0][0].legend(fontsize=8, loc="upper left")
fig.tight_layout()
viz.save_figure(fig, "label_iou_histograms", out_dir)
plt.show()

# %%
summary = pd.DataFrame({label: q.groupby("dataset")["box_iou"].mean() for label, q in sets.items()})
summary = summary.reindex(list(test_sets))
display(Markdown(narrative.label_iou_summary(summary)))

# %% [markdown]
# ## 3 · Is the confidence informative?
#
# Fused confidence $s^*$ against the label's true box IoU, per dataset, with the Spearman rank
# correlation $\rho$. Most labels sit near IoU 1, so the lower panels count labels per cell on a
# log colour scale (a scatter would pile them into one dot); the upper panels count them per
# confidence bin, split into good (IoU ≥ 0.8) and poor labels. The dashed line is the filter's
# $\theta$: it drops everything to its left. Filtering can only raise label quality where
# $\rho > 0$, and is worth its lost images only where the confidence is informative; we call
# $\rho \ge 0.3$ informative and anything below weak (close to dropping images at random).

# %%
good_iou = 0.8  # the upper panels split the labels at this IoU: good (green) and poor (red)
edges = np.linspace(0, 1, 21)
scored = tta_q.dropna(subset=["score"])
counts = [
    np.histogram2d(d["score"], d["box_iou"], bins=[edges, edges])[0].max()
    for _, d in scored.groupby("dataset")
]
# one log colour scale for all panels: most labels sit at IoU ~ 1, where dots would hide each other
norm = LogNorm(vmin=1, vmax=max([2, *counts]))
fig, axes = plt.subplots(
    2,
    len(test_sets),
    figsize=(4.2 * len(test_sets), 4.6),
    squeeze=False,
    sharex=True,
    sharey="row",
    height_ratios=[1, 3],
    layout="constrained",
)
rho = {}
for top, ax, name in zip(axes[0], axes[1], test_sets, strict=True):
    q = scored[scored["dataset"] == name]
    rho[name] = q["score"].corr(q["box_iou"], method="spearman") if len(q) > 2 else np.nan
    *_, cells = ax.hist2d(
        q["score"], q["box_iou"], bins=[edges, edges], norm=norm, cmin=1, cmap="viridis"
    )
    good = q["box_iou"] >= good_iou
    top.hist(
        [q.loc[good, "score"], q.loc[~good, "score"]],
        bins=edges,
        stacked=True,
        color=["tab:green", "tab:red"],
        label=[f"IoU ≥ {good_iou}", f"IoU < {good_iou}"],
    )
    for a in (top, ax):
        a.axvline(theta[name], ls="--", color="k", lw=1)
    top.set_title(f"{name} (ρ = {rho[name]:.2f})")
    ax.set(xlabel="fused confidence s*", xlim=(0, 1), ylim=(0, 1))
axes[0][0].set_ylabel("labels")
axes[0][0].legend(fontsize=7, loc="upper left")
axes[1][0].set_ylabel("box IoU with ground truth")
bar = fig.colorbar(cells, ax=axes[1].tolist(), label="labels per cell (log scale)")
bar.set_ticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= norm.vmax])
bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
bar.ax.yaxis.set_minor_formatter(NullFormatter())
viz.save_figure(fig, "confidence_vs_iou", out_dir)
plt.show()

# %%
display(Markdown(narrative.confidence_informative(rho)))

# %% [markdown]
# ## 4 · The θ sweep
#
# For thresholds from 0 to 1: the share of training images kept and the mean box IoU of the kept
# labels. Each dataset's θ under the params' rule (★, the one Table III trains with) and under
# the `mean` rule (◆) are points on its curve; the dotted line is the share of images the
# paper's thresholds kept over its four datasets, the grey band their range (79–94 %). A
# threshold that keeps few images of high quality trades label noise for less data.

# %%
thetas = np.linspace(0, 1, 41)
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for name in test_sets:
    q = tta_q[tta_q["dataset"] == name]
    kept = [(q["score"] >= t).mean() for t in thetas]
    iou = [q.loc[q["score"] >= t, "box_iou"].mean() for t in thetas]
    ax.plot(kept, iou, marker=".", label=name)
    for rule_theta, marker in ((theta[name], "k*"), (theta_mean[name], "kD")):
        keep = q["score"] >= rule_theta
        ax.plot(
            [keep.mean()], [q.loc[keep, "box_iou"].mean()], marker, ms=8 if "*" in marker else 5
        )
paper_kept = [100 * n / 500 for n in PAPER_KEPT_IMAGES.values()]  # percent, per paper dataset
ax.axvspan(min(paper_kept) / 100, max(paper_kept) / 100, color="grey", alpha=0.15, lw=0)
ax.axvline(PAPER_KEPT_SHARE, ls=":", color="grey", lw=1.2)
ax.plot([], [], "k*", ms=8, label=f"θ by `{confidence_threshold}` (Table III)")
ax.plot([], [], "kD", ms=5, label="θ by `mean`")
ax.plot(
    [],
    [],
    ":",
    color="grey",
    label=f"paper kept {100 * PAPER_KEPT_SHARE:.0f} % (band: {min(paper_kept):.0f}–"
    f"{max(paper_kept):.0f} %)",
)
ax.set(xlabel="share of training images kept", ylabel="mean box IoU of kept labels")
ax.set_title("θ from 0 (right) to 1 (left)")
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
fig.tight_layout()
viz.save_figure(fig, "theta_sweep", out_dir)
plt.show()

# %% [markdown]
# Notebook 03 wrote each dataset's θ and kept share under both rules (`confidence_filter`); its
# numbers are the markers' x positions:

# %%
cf_rules = pd.read_csv(out / "tables" / "confidence_filter.csv")
kept_share = 100 * kept_q.groupby("dataset").size() / tta_q.groupby("dataset").size()
display(Markdown(narrative.theta_sweep(cf_rules, paper_kept)))

# %% [markdown]
# What filtering did downstream, read back from notebook 03's tables: the student trained on the
# filtered labels (TTA+WBF+CF) against the one trained on all of them (TTA+WBF), each a mean over
# the same seeds, the difference weighed against their seed spread.

# %%
cf_table = cf_rules[cf_rules["rule"] == str(confidence_threshold)]
table3 = pd.read_csv(out / "tables" / "table3_distillation.csv")
ours3 = table3[table3["source"].str.startswith("ours")]
for model in ours3.loc[ours3["method"] == "Oracle", "model"].drop_duplicates():
    display(Markdown(narrative.filter_outcome(ours3, cf_table, model, str(confidence_threshold))))

# %% [markdown]
# ## 5 · AP over relabelling rounds
#
# Round 0 is the student trained on the confidence-filtered teacher labels; round $k$ is a fresh
# student trained on round $k-1$'s relabelling of the training images. Each point is the mean
# over notebook 03's seeds, the band spans the lowest to the highest seed.

# %%
rounds = pd.read_csv(out / "tables" / "relabel_rounds.csv")
box = rounds[rounds["task"] == "box"]
fig, axes = plt.subplots(
    1, len(test_sets), figsize=(3.6 * len(test_sets), 3.2), squeeze=False, sharey=True
)
for ax, name in zip(axes[0], test_sets, strict=True):
    for s_name, d in box[box["dataset"] == name].groupby("student", sort=False):
        m = d.groupby("round")["AP75"].agg(["mean", "min", "max"])
        line = ax.plot(m.index, m["mean"], marker="o", label=s_name)[0]
        ax.fill_between(m.index, m["min"], m["max"], color=line.get_color(), alpha=0.2)
    ax.set(title=name, xlabel="relabel round", xticks=sorted(box["round"].unique()))
    ax.grid(alpha=0.3)
axes[0][0].set_ylabel("box AP75 on test\n(band: seed min–max)")
handles, labels = axes[0][0].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", ncol=max(1, len(labels)), fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0, 1, 0.9))
viz.save_figure(fig, "relabel_rounds", out_dir)
plt.show()

# %%
display(Markdown(narrative.relabel_rounds(rounds)))

# %% [markdown]
# ## 6 · AP against box size
#
# Test box AP of the teacher's zero-shot labels, the Oracle (the student trained on the ground
# truth) and the final distilled student (after CF and relabelling, as in Figure 3), per bin of
# ground-truth **box** area as a share of the image: below 0.25 %, 0.25–1 %, 1–4 %, 4–16 % and
# above 16 % (box sides two-fold apart). Each bin is scored by COCOeval on its own objects
# (`ap_by_size_bins`); a detection matching nothing counts in the bin of its own size. The
# students are the first seed's, the files notebook 03 saved; the tick labels give each bin's
# objects $n$, and a bin with few is noisy. Where the student falls below the Oracle is where
# distillation loses; where the teacher falls too, its labels are the likely cause.

# %%
group_test = {g: pool([test_sets[n] for n in test_sets if group_of[n] == g], g) for g in zs_file}
methods = {
    f"teacher zero-shot ({teacher})": zs_file,
    f"Oracle ({student})": oracle_file,
    f"student ({student}, {final})": st_file,
}
by_size = pd.DataFrame(
    [
        {"dataset": name, "method": method, "bin": viz.size_bin_label(r["share lo"], r["share hi"])}
        | r
        for name, ds in test_sets.items()
        for method, files in methods.items()
        for r in ap_by_size_bins(
            group_test[group_of[name]], files[group_of[name]], SIZE_BIN_EDGES, "bbox", ds.image_ids
        )
    ]
)
# the bin's label names its shares, which the table's one-decimal floats would round away
tables.write_table(by_size.drop(columns=["share lo", "share hi"]), "ap_by_size", out_dir)
fig = viz.ap_vs_size(by_size, "AP", list(methods))
viz.save_figure(fig, "ap_vs_size", out_dir)
plt.show()

# %% [markdown]
# The bins where each model scores lowest, per dataset (bins without ground truth left out; $n$
# counts the objects of the bins named):

# %%
scored = by_size.dropna(subset=["AP"])
lowest = scored[scored["AP"] == scored.groupby(["dataset", "method"])["AP"].transform("min")]
lowest = lowest.groupby(["dataset", "method"], sort=False).agg(
    bins=("bin", " and ".join), AP=("AP", "first"), n=("n", "sum")
)
lines = [
    f"- **{name}**: "
    + "; ".join(
        f"{m} on {r['bins']} (AP {r['AP']:.1f}, n = {r['n']})" for (_, m), r in d.iterrows()
    )
    for name, d in lowest.groupby(level="dataset", sort=False)
]
display(Markdown("\n".join(lines) or "No size bin has ground truth on the test splits."))

# %% [markdown]
# ## Summary
#
# The table reads the figures back in numbers: mean pseudo-label IoU at each refinement step, the
# confidence–IoU rank correlation per dataset, and the share of training images the filter keeps.

# %%
summary["theta"] = pd.Series(theta)
summary["kept by CF %"] = kept_share
summary["Spearman rho"] = pd.Series(rho)
summary.round({"theta": 3, "kept by CF %": 1, "Spearman rho": 2, **{c: 3 for c in sets}})
