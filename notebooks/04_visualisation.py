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
# The paper closes with Figure 3: for each dataset, the input image, its ground truth, the
# zero-shot VLM prediction and the distilled student's prediction. This notebook draws the same
# figure from the files the earlier stages wrote, then asks four questions the paper's tables
# leave open:
#
# 1. **How good are the pseudo-labels**, image by image, before and after TTA and confidence
#    filtering? (histogram of IoU with the hidden ground truth)
# 2. **Is the confidence informative enough to filter on?** Eq. (6) keeps labels with
#    $s^* \ge \theta$; that only helps if high $s^*$ means high IoU. (scatter)
# 3. **Which $\theta$?** Images kept versus the quality of what is kept, over a sweep of
#    thresholds, with the `mean` rule marked. (θ sweep)
# 4. **Does relabelling keep helping?** Test AP over relabel rounds. (curve)
#
# **Inputs:** `{out_dir}/predictions/` and `{out_dir}/tables/` from notebooks 01–03.
# **Outputs:** `{out_dir}/figures/figure3_visual_results.png`, `label_iou_histograms.png`,
# `confidence_vs_iou.png`, `theta_sweep.png`, `relabel_rounds.png`.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from afss_utils import coco, viz
from afss_utils.config import seed_everything
from afss_utils.datasets import open_split
from afss_utils.distill import confidence_filter

# %% tags=["parameters"]
seed = 0
out_dir = "results"
data_dir = "data/synthetic/default"
datasets = [
    {"name": "lightbox", "layout": "synthetic", "domain": "lightbox"},
    {"name": "sunlamp", "layout": "synthetic", "domain": "sunlamp"},
    {"name": "earth", "layout": "synthetic", "domain": "earth"},
]
pool_training = True
teacher = "classical_threshold"
students = ["yolo11_seg"]
confidence_threshold = "mean"
relabel_rounds = 1

# %% [markdown]
# ## 1 · Figure 3: teacher versus student
#
# Rows are test images, three per dataset, picked at random with a fixed seed; columns are the
# image, the ground truth (green), the teacher's zero-shot prediction and the prediction of the
# final distilled student (the first of `students`, after confidence filtering and
# relabelling), each with its score.

# %%
seed_everything(seed)
out = Path(out_dir)
pred_dir = out / "predictions"
test_sets = {spec["name"]: open_split(spec, "test", data_dir) for spec in datasets}
group_of = {name: "pooled" if pool_training else name for name in test_sets}
student = students[0]
final = "TTA+WBF+CF+TR" if relabel_rounds else "TTA+WBF+CF"
rng = np.random.default_rng(seed)
grid, labels = [], []
for name, ds in test_sets.items():
    g = group_of[name]
    zero_shot = coco.results_by_image(pred_dir / "teacher_test" / f"{g}_zero-shot.json")
    distilled = coco.results_by_image(pred_dir / "students" / g / student / f"{final}.json")
    for image_id in rng.choice(ds.image_ids, size=min(3, len(ds)), replace=False):
        image_id = int(image_id)
        image = ds.load_image(image_id)
        grid.append(
            [
                ("input", image, None),
                ("ground truth", image, ds.annotations(image_id), viz.GT_COLOR),
                (f"teacher ({teacher})", image, zero_shot.get(image_id, [])[:1]),
                (f"student ({student}, {final})", image, distilled.get(image_id, [])[:1]),
            ]
        )
        labels.append(f"{name} #{image_id}")
fig = viz.sample_grid(grid, row_labels=labels, cell_size=2.2)
viz.save_figure(fig, "figure3_visual_results", out_dir)

# %% [markdown]
# ## 2 · Pseudo-label quality before and after TTA and CF
#
# Each training image's pseudo-label is compared with the hidden ground truth (notebook 03 wrote
# the IoUs). Three label sets: the teacher's single view, the TTA-fused labels, and the fused
# labels that survive the confidence filter. A good refinement moves mass to the right.

# %%
quality = pd.read_csv(out / "tables" / "pseudo_label_quality.csv")
tta_q = quality[quality["labels"] == "tta"]


def theta_of(scores):
    """Eq. 6's theta for one dataset's label scores (the paper: their mean)."""
    records = [{"image_id": 0, "bbox": [0, 0, 1, 1], "score": float(s)} for s in scores]
    return confidence_filter(records, confidence_threshold)[1]


theta = {n: theta_of(tta_q[tta_q["dataset"] == n]["score"].dropna()) for n in test_sets}
kept_q = tta_q[tta_q["score"] >= tta_q["dataset"].map(theta)]
sets = {
    "single view": quality[quality["labels"] == "single"],
    "TTA+WBF": tta_q,
    "TTA+WBF+CF (θ per dataset)": kept_q,
}
fig, axes = plt.subplots(1, len(test_sets), figsize=(4.2 * len(test_sets), 3.2), squeeze=False)
bins = np.linspace(0, 1, 21)
for ax, name in zip(axes[0], test_sets, strict=True):
    for label, q in sets.items():
        ax.hist(q[q["dataset"] == name]["box_iou"], bins=bins, histtype="step", lw=1.5, label=label)
    ax.set(title=name, xlabel="box IoU with ground truth", ylabel="training images")
axes[0][0].legend(fontsize=8, loc="upper left")
fig.tight_layout()
viz.save_figure(fig, "label_iou_histograms", out_dir)

# %% [markdown]
# ## 3 · Is the confidence informative?
#
# Fused confidence $s^*$ against the label's true box IoU, per dataset, with the Spearman rank
# correlation $\rho$. Filtering on $s^*$ can only raise label quality where $\rho > 0$; the dashed
# line is the filter's $\theta$.

# %%
fig, axes = plt.subplots(1, len(test_sets), figsize=(4.2 * len(test_sets), 3.4), squeeze=False)
rho = {}
for ax, name in zip(axes[0], test_sets, strict=True):
    q = tta_q[(tta_q["dataset"] == name)].dropna(subset=["score"])
    rho[name] = q["score"].corr(q["box_iou"], method="spearman") if len(q) > 2 else np.nan
    ax.scatter(q["score"], q["box_iou"], s=10, alpha=0.6)
    ax.axvline(theta[name], ls="--", color="k", lw=1)
    ax.set(title=f"{name} (ρ = {rho[name]:.2f})", xlabel="fused confidence s*", ylabel="box IoU")
    ax.set(xlim=(0, 1), ylim=(0, 1))
fig.tight_layout()
viz.save_figure(fig, "confidence_vs_iou", out_dir)

# %% [markdown]
# ## 4 · The θ sweep
#
# For thresholds from 0 to 1: the share of training images kept and the mean box IoU of the kept
# labels. The paper's `mean` rule is one point on this curve; a threshold that keeps few images
# of high quality trades label noise for less data.

# %%
thetas = np.linspace(0, 1, 41)
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for name in test_sets:
    q = tta_q[tta_q["dataset"] == name]
    kept = [(q["score"] >= t).mean() for t in thetas]
    iou = [q.loc[q["score"] >= t, "box_iou"].mean() for t in thetas]
    ax.plot(kept, iou, marker=".", label=name)
    k = (q["score"] >= theta[name]).mean()
    ax.plot([k], [q.loc[q["score"] >= theta[name], "box_iou"].mean()], "k*", ms=10)
ax.set(xlabel="share of training images kept", ylabel="mean box IoU of kept labels")
ax.set_title("θ from 0 (right) to 1 (left); ★ = each dataset's θ")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
viz.save_figure(fig, "theta_sweep", out_dir)

# %% [markdown]
# ## 5 · AP over relabelling rounds
#
# Round 0 is the student trained on the confidence-filtered teacher labels; round $k$ is a fresh
# student trained on round $k-1$'s relabelling of the training images.

# %%
rounds = pd.read_csv(out / "tables" / "relabel_rounds.csv")
box = rounds[rounds["task"] == "box"]
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for (name, s_name), d in box.groupby(["dataset", "student"]):
    ax.plot(d["round"], d["AP75"], marker="o", label=f"{name} / {s_name}")
ax.set(xlabel="relabel round", ylabel="box AP75 (test)")
ax.set_xticks(sorted(box["round"].unique()))
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
fig.tight_layout()
viz.save_figure(fig, "relabel_rounds", out_dir)

# %% [markdown]
# ## Summary
#
# The printout reads the figures back in numbers: mean pseudo-label IoU at each refinement step,
# the confidence–IoU rank correlation per dataset, and the share of training images the filter
# keeps.

# %%
summary = pd.DataFrame({label: q.groupby("dataset")["box_iou"].mean() for label, q in sets.items()})
summary["theta"] = pd.Series(theta)
summary["kept by CF %"] = 100 * kept_q.groupby("dataset").size() / tta_q.groupby("dataset").size()
summary["Spearman rho"] = pd.Series(rho)
summary.round(3)
