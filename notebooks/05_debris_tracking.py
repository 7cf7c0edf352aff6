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
# # 05 · Annotation-free space-debris tracking with a weight-free streak teacher (SDT-Net §3 simulation, §5 and Table 2)
#
# *Reproduces:* the SDTD simulation of §3 (ZScale, eqs. 1–3; line-source debris, eqs. 4–6) and
# the tracker comparison of §5 with **Table 2** of the SDT-Net paper (Zhuang et al.,
# `reference/sdt-net-debris-tracking-paper.md`), in the annotation-free setting of this study.
#
# **What you will see**
# 1. One raw telescope frame stretched by ZScale by hand, and one debris moving at constant velocity.
# 2. A label-free streak teacher, TTA + fusion and the confidence filter, then three YOLO11 students.
# 3. SDT-Net itself (§4): a debris as two endpoints paired by an embedding and tracked by their
#    offsets, trained on the teacher's labels and on the ground truth, with the paper's ablation.
# 4. ByteTrack and OC-SORT on every box detector, SDT-Net's own association, MOTA/IDF1/HOTA by
#    trackeval (checked by motmetrics), beside Table 2.
#
# Ground-based telescopes film space debris as faint **line sources** (streaks) crossing a star
# field, and nobody labels those frames either. The paper trains its tracker on **SDTD**, videos
# it simulates from real ZTF frames, and compares trackers with MOT metrics. This notebook asks the
# study's question in that setting: does the annotation-free recipe — a label-free teacher,
# test-time augmentation with fusion, a confidence filter, a distilled student — detect debris
# well enough for a maintained multi-object tracker to follow them?
#
# **Inputs:** the `debris` params (simulator, teacher, TTA/fusion, students, trackers); nothing
# from earlier notebooks. **Outputs:** `{out_dir}/tables/table_debris_tracking.{csv,md}`,
# `{out_dir}/tables/debris_splits_vs_sdtd.{csv,md}`, `{out_dir}/figures/debris_tracks.png`,
# `{out_dir}/figures/debris_pairing.png`, `{out_dir}/figures/debris_mota_hota.png`. Frames,
# pseudo-labels and training runs live in `{work_dir}/debris/`.

# %%
import math
import time
from functools import partial
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from scipy.optimize import linear_sum_assignment

from afss_utils import cluster as ray_cluster
from afss_utils import narrative, tables, viz
from afss_utils.coco import load_results
from afss_utils.config import quiet_ultralytics, seed_everything, with_defaults
from afss_utils.debris import sdtnet
from afss_utils.debris.simulation import SDTD_FACTS, split_statistics, zscale
from afss_utils.debris.stage import (
    TEST_SPLITS,
    compare_to_teacher,
    draw_tracks,
    endpoint_labels,
    make_videos,
    score_detector,
    score_sdtnet,
    sdtnet_config,
    tracking_table,
    train_and_predict,
    train_and_track_sdtnet,
)
from afss_utils.debris.tracking import ground_truth_rows, mot_rows_from_results, track_video
from afss_utils.distill import confidence_filter, pseudo_instances
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import pseudolabel
from afss_utils.teachers import build_teacher

# %% tags=["parameters"]
seed = 0
device = "auto"  # auto | cpu | cuda
out_dir = "results"
work_dir = "data/work/default"  # frames, pseudo-labels, training runs (under debris/)
# The lesson's knobs; the rest of params/default.yaml's `debris` (simulator sizes, fusion,
# tracker arguments, the YOLO11 student) and `cluster` are filled in below.
cluster = {}
debris = {
    "sim": {"frames": 10, "debris": [1, 3], "speed": [3.0, 7.0]},  # T, K, px/frame
    "videos": {"train": 72, "test_sparse": 6, "test_dense": 12},  # videos per split
    "teacher_options": {"method": "matched"},  # streak teacher: matched | lsd
    "tta": ["hflip", "vflip", "rot90"],  # exact geometric views, fused per frame
    "confidence_threshold": "mean",  # theta of the CF: a number in [0, 1], 'mean', 'keep 0.85'
    "trackers": ["bytetrack", "ocsort"],
}

# %% [markdown]
# ## 1 · Simulated SDTD-style videos (§3.2, eqs. 4–6)
#
# Each video holds $K$ debris. The $k$-th is a **line source** with parameters (eq. 4)
#
# $$S_k^t = \{\underbrace{x_k^t, y_k^t}_{\text{centre}},\ \underbrace{l_k, w_k}_{\text{length, width}},\ \underbrace{\theta_k, v_k}_{\text{velocity}}\}, \qquad (4)$$
#
# sampled once at $t = 1$; only the centre changes, at constant velocity with $\Delta t = 1$:
#
# $$x_k^{t+1} = x_k^t + v_k \cos\theta_k\,\Delta t, \qquad y_k^{t+1} = y_k^t + v_k \sin\theta_k\,\Delta t. \qquad (5)$$
#
# Each frame draws the rectangle $l_k \times w_k$ at angle $\theta_k$ with random brightness
# noise and blurs it with a Gaussian point-spread function of width $\delta_{psf}$ (eq. 6, with
# $S$ the scale factor and $(x_c, y_c)$ the source's centre):
#
# $$I_k^t(x, y) = \frac{S}{2\pi\delta_{psf}^2}\exp\!\left(-\frac{(x - x_c)^2 + (y - y_c)^2}{2\delta_{psf}^2}\right). \qquad (6)$$
#
# A debris may be truncated (its track ends at a random frame) and is dropped once it leaves the
# frame. The paper draws into real ZTF frames; here `afss_utils.debris.simulation` simulates the
# sky too (smooth background, drifting PSF stars, Poisson and read noise, hot pixels, cosmic rays).
# The **dense** videos are dense in the paper's sense (more than three debris in a frame,
# overlapping in space and time): 5-8 debris, placed as pairs whose tracks cross and as break-up
# groups of 2-3 fragments flying side by side a few streak widths apart, so streaks overlap along
# their length for many frames. A third of the training videos are dense too (`sim.dense_share`),
# as SDTD's training set holds both kinds; the sparse test split has none.
# Ground truth (COCO json with `video_id`, `frame_id`, `track_id` and streak endpoints; MOTChallenge
# `gt.txt`) is used only to score. A split already rendered with the same settings is reused.

# %%
narrative.run_from_repo_root()
quiet_ultralytics()  # ultralytics' warnings and errors only, not its per-epoch log
seed_everything(seed)
debris, cluster = with_defaults("debris", debris), with_defaults("cluster", cluster)
t_stage = {}
t0 = time.perf_counter()
work = Path(work_dir) / "debris"
data = make_videos({**debris, "device": device}, work / "data")
t_stage["simulate"] = time.perf_counter() - t0

# %%
splits = pd.DataFrame(
    [
        {
            "split": s,
            "videos": len({im["video"] for im in d.instances["images"]}),
            "frames": len(d),
            "debris boxes": len(d.instances["annotations"]),
            "tracks": len({(a["video_id"], a["track_id"]) for a in d.instances["annotations"]}),
        }
        for s, d in data.items()
    ]
)
splits

# %%
display(Markdown(narrative.debris_splits(splits)))

# %% [markdown]
# What we reproduce of SDTD and what we do not: its facts (§3, Table 1) beside ours, measured on
# the rendered splits (frames with more than three debris; frames where two debris' boxes
# intersect; the streak length between endpoints).

# %%
facts = pd.DataFrame(
    {"SDTD (the paper)": SDTD_FACTS} | {s: split_statistics(d.instances) for s, d in data.items()}
)
facts.index.name = "fact"
tables.write_table(facts.reset_index(), "debris_splits_vs_sdtd", out_dir)
facts

# %% [markdown]
# ## 2 · One debris, frame by frame (eq. 5 by hand)
#
# The ground truth stores each streak's two endpoints; their midpoint is the centre
# $(x_k^t, y_k^t)$. For the track seen on most frames of the first training video, the step
# between frames gives $v_k$ (its length) and $\theta_k$ (its direction); eq. 5 says both are
# the same on every step.

# %%
train = data["train"]
first = train.instances["images"][0]["video_id"]  # the first training video
anns = [a for a in train.instances["annotations"] if a["video_id"] == first]
frame_of = {im["id"]: im["frame_id"] for im in train.instances["images"]}
tid = pd.Series([a["track_id"] for a in anns]).mode()[0]  # the track seen on most frames
ends = {  # frame -> the streak's two endpoints (2, 2)
    frame_of[a["image_id"]]: np.reshape(a["endpoints"], (2, 2))
    for a in anns
    if a["track_id"] == tid
}
centres = [{"frame": f, "x": e[:, 0].mean(), "y": e[:, 1].mean()} for f, e in sorted(ends.items())]
track = pd.DataFrame(centres, columns=["frame", "x", "y"])  # (x_k^t, y_k^t): the midpoints
step = track[["x", "y"]].diff().div(track["frame"].diff(), axis=0)  # displacement per frame
track["v"] = np.hypot(step["x"], step["y"])  # v_k
track["theta"] = np.degrees(np.arctan2(step["y"], step["x"]))  # theta_k, degrees
assert np.allclose(step.dropna(), step.dropna().mean(), atol=0.05)  # eq. (5): constant velocity
track.round(2)

# %%
display(Markdown(narrative.debris_motion(track, debris["sim"]["speed"])))

# %% [markdown]
# ## 3 · From counts to grey levels: the ZScale stretch by hand (§3.1.2, eqs. 1–3)
#
# A telescope frame holds 16-bit counts: a sky of about a thousand, stars and hot pixels in the
# tens of thousands. The paper maps them to 8-bit grey levels with ZScale: from the median and
# standard deviation of the pixels, with $k = 2.5$,
#
# $$z_1 = z_{median} - k\, z_{std}, \qquad z_2 = z_{median} + k\, z_{std}, \qquad (1)$$
#
# $$I_{scaled}(x, y) = 255\,\frac{I(x, y) - z_1}{z_2 - z_1}, \qquad (2)$$
#
# $$I_{final}(x, y) = \min\!\big(\max(I_{scaled}(x, y), 0),\ 255\big). \qquad (3)$$
#
# The simulator keeps each frame's counts (`raw/*.png`, uint16) beside the stretched 8-bit PNG
# that teachers and students read. On the first training frame, by hand and with
# `simulation.zscale` (the paper's median ± k·std, not astropy's IRAF zscale):

# %%
im = train.instances["images"][0]  # frame 1 of the first training video
raw = cv2.imread(str(train.image_dir / im["raw_file"]), cv2.IMREAD_UNCHANGED).astype(np.float64)
k = 2.5  # the paper's k
z_med, z_std = np.median(raw), np.std(raw)
z1, z2 = z_med - k * z_std, z_med + k * z_std  # eq. (1)
scaled = 255 * (raw - z1) / (z2 - z1)  # eq. (2)
by_hand = np.clip(np.round(scaled), 0, 255).astype(np.uint8)  # eq. (3), rounded to grey levels
assert np.array_equal(by_hand, zscale(raw, k))  # the package's stretch, pixel for pixel
stored = train.load_image(im["id"])[..., 0].astype(int)  # the 8-bit frame on disk
zs = pd.DataFrame(
    [
        {
            "k": k,
            "median": z_med,
            "std": z_std,
            "z1": z1,
            "z2": z2,
            "min": raw.min(),
            "max": raw.max(),
            "below z1 %": 100 * (raw < z1).mean(),
            "above z2 %": 100 * (raw > z2).mean(),
            "max |diff| stored": np.abs(by_hand.astype(int) - stored).max(),
        }
    ]
)
zs.round(2)

# %%
minmax = 255 * (raw - raw.min()) / max(raw.max() - raw.min(), 1)  # the naive stretch
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
for ax, img, title in zip(
    axes[:2], [minmax, by_hand], ["min–max", f"ZScale, k = {k}"], strict=True
):
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
axes[2].hist(raw.ravel(), bins=200, color="0.4")
for z in (z1, z2):
    axes[2].axvline(z, color="tab:red", lw=1)
axes[2].set(yscale="log", xlabel="raw counts", ylabel="pixels")
axes[2].set_title("[z1, z2] on the histogram", fontsize=9)
fig.tight_layout()

# %%
display(Markdown(narrative.zscale_frame(zs)))

# %% [markdown]
# ## 4 · A label-free streak teacher, alone and with TTA + fusion
#
# The teacher (`afss_utils.debris.teacher`, weight-free) subtracts a median background, applies
# the PSF-matched Gaussian, thresholds at a few noise sigmas and keeps the **elongated** connected
# components: stars and hot pixels are round or tiny, debris are lines. Streaks that touch (two
# tracks crossing, or the fragments of a break-up flying a few pixels apart) threshold into one
# component, which a component rule alone labels once; so the teacher looks for straight lines in
# each component (`line_segments`: a deterministic Hough vote, the winning line refitted to its
# pixels and cut where they stop, repeated on what it has not explained) and gives each line its
# own label where it finds two or more. Its score measures the
# streak's SNR and elongation, so the confidence filter has something to select on. The same TTA
# and fusion stages as for spacecraft are used: flips and 90° rotations are exact for boxes here
# too, and WBF merges the views; `top_k = None` keeps every debris of a frame. As in notebook 02,
# `skip_box_thr` drops every view's box scoring below it before fusing (0: none is dropped) and
# `empty_views: skip` leaves a view that found nothing out of the $T$ views that WBF's fused
# score is scaled by ($\min(M, T)/T$, $M$ the boxes in a cluster). Every split is labelled, once
# without and once with TTA + fusion. This teacher is the only labeller of the notebook: no
# vision-language model and no weights are involved.

# %%
teacher = build_teacher("streak", top_k=None, device=device, **debris["teacher_options"])
fusion = FusionConfig.from_params(debris["fusion"])
labels = {"teacher zero-shot": {}, "teacher TTA+fusion": {}}
t0 = time.perf_counter()
for split, ds in data.items():
    for name, views in (("teacher zero-shot", []), ("teacher TTA+fusion", debris["tta"])):
        out = work / "labels" / f"{name.replace(' ', '_')}_{split}.json"
        pseudolabel(teacher, ds, out, views, fusion, prompt="debris", overwrite=True)
        labels[name][split] = load_results(out)
t_stage["teacher (+TTA)"] = time.perf_counter() - t0

# %% [markdown]
# The **confidence filter** (the AFSS paper's eq. 6) keeps a fused label only when its score
# $s^*$ reaches a threshold $\theta$; with `confidence_threshold: mean`, $\theta$ is the mean
# fused score of the training labels:
#
# $$\mathcal{P}_{CF} = \{(b^*, s^*) \in \mathcal{P}^* : s^* \ge \theta\}, \qquad \theta = \frac{1}{|\mathcal{P}^*|}\sum_{\mathcal{P}^*} s^*.$$
#
# By hand on the training split, against `confidence_filter`, and the label counts per split:

# %%
fused = labels["teacher TTA+fusion"]["train"]
kept, theta = confidence_filter(fused, debris["confidence_threshold"])
s = np.array([r["score"] for r in fused])
if debris["confidence_threshold"] == "mean" and len(s):
    assert np.isclose(theta, s.mean())  # theta = the mean fused score
assert len(kept) == int((s >= theta - 1e-9).sum())  # eq. (6): keep s* >= theta
counts = pd.DataFrame(
    [
        {
            "split": sp,
            "ground truth": len(d.instances["annotations"]),
            **{n: len(labels[n][sp]) for n in ("teacher zero-shot", "teacher TTA+fusion")},
            "kept by CF": len(kept) if sp == "train" else math.nan,
        }
        for sp, d in data.items()
    ]
)
counts

# %%
display(Markdown(narrative.debris_labels(counts, theta)))

# %% [markdown]
# ## 5 · Distilled YOLO11 students and the Oracle
#
# Three YOLO11n box students are trained from scratch with the same budget
# (`debris.yolo`): on the fused pseudo-labels (**student**), on those kept by the confidence filter
# (**student +CF**), and on the ground truth (**Oracle**, the upper bound, as in Table III).
# `debris.yolo.task` picks axis-aligned boxes (`detect`) or ultralytics' oriented boxes (`obb`,
# a natural fit for thin diagonal streaks; trained on the simulator's oriented boxes for the Oracle
# and on the minimum-area rectangle of each pseudo-label's mask for the students, and scored
# through the axis-aligned hull of each predicted box so the trackers and metrics are unchanged).
# `benchmarks/bench_debris_obb.py` compares the two; the default is the one it favours.

# %%
train_sets = {
    "student": pseudo_instances(labels["teacher TTA+fusion"]["train"], data["train"], top_k=None),
    "student +CF": pseudo_instances(kept, data["train"], top_k=None),
    "Oracle": data["train"].instances,
}
sets = pd.DataFrame(
    [
        {"training set": n, "images": len(i["images"]), "boxes": len(i["annotations"])}
        for n, i in train_sets.items()
    ]
)
sets

# %%
display(Markdown(narrative.debris_train_sets(sets)))

# %% [markdown]
# The three trainings are independent: each will be a Ray task on `cluster.cpus_per_training`
# threads (`afss_utils.cluster`), submitted with SDT-Net's below before any is awaited, and each
# predicts the test videos before it returns.

# %%
calls = {
    name: partial(
        train_and_predict,
        inst,
        data["train"].image_dir,
        work / "students" / name.replace(" ", "_").replace("+", ""),
        {**debris, "device": device},
        seed,
        {s: data[s] for s in TEST_SPLITS},
    )
    for name, inst in train_sets.items()
}

# %% [markdown]
# ## 6 · SDT-Net: a debris as two endpoints, tracked by their offsets (§4)
#
# An axis-aligned box is the wrong shape for a line source: two streaks that cross, or that fly
# side by side, share nearly one box, and a box detector's non-maximum suppression keeps one of
# them. SDT-Net (`afss_utils.debris.sdtnet`) finds each debris by its **two endpoints** and
# links frames by where each endpoint was a frame before. Its input is CenterTrack's: the
# current frame $I_t$, the previous one $I_{t-1}$ and the previous frame's endpoint heatmap
# $H_{t-1}$, each through a conv-BN-ReLU, summed, into a backbone with an up-sampler to stride 4
# ($F_b$). The heads, all at stride 4:
#
# - **RoI-FE** (§4.3): a debris-mask logit $M$ from a second up-sampler, $F_{en} = \sigma(M) \odot F_b$
#   (eq. 7), trained by BCE on the rasterised streaks (eq. 8);
# - **endpoint heatmaps** (§4.4.1): a *left* (smaller $x$) and a *right* channel, trained by
#   CenterNet's focal loss (eq. 9) on Gaussians of width $\sigma$ cells, exactly 1 at each
#   endpoint's cell;
# - **line-source embedding** (§4.4.2): one value $e$ per endpoint; pull draws a debris' two
#   values to their mean $\bar e_k$, push separates the means of different debris by a margin
#   $\Delta = 1$:
#
# $$L_{pull} = \frac{1}{N}\sum_k \left[(e_{l_k} - \bar e_k)^2 + (e_{r_k} - \bar e_k)^2\right], \qquad L_{push} = \frac{1}{N(N-1)}\sum_k \sum_{j \ne k} \max(0, \Delta - |\bar e_k - \bar e_j|); \qquad (11, 12)$$
#
# - **partner vectors** (our addition, `reach_weight` > 0): each endpoint also regresses the vector
#   to its debris' other endpoint (cells; L1 over the endpoint's 3 × 3 cells, nine samples each).
#   CentripetalNet (Dong et al., 2020) replaced CornerNet's embedding by such shifts because an
#   embedding cannot tell alike objects apart, and side-by-side fragments are alike; here they are
#   added to the embedding: a pair must point at each other within `reach_gate` pixels and costs
#   its miss / `reach_gate` more;
# - **debris offset** (§4.5): for each endpoint $c$, its displacement to the same endpoint in the
#   previous frame; $c' = c + o$ is where it was, and a detection joins the previous track whose
#   endpoints lie nearest its $c'$ (mean distance, Hungarian, within the radius $r$); one with none
#   starts a track (eqs. 13-15).
#
# Our compact version: a ResNet18 from scratch with an FPN/IDA-style up-sampler (the paper's
# DLA-34 costs several times more per step on 2 CPU cores), a sub-cell head so endpoints decode to
# the pixel, and boxes for the MOT metrics drawn as the endpoint pair's axis-aligned hull padded
# by the streak, so its rows compare with the YOLO rows. It is trained four ways, each
# `debris.sdtnet.steps` steps: the full network **annotation-free** (on the teacher's TTA + fusion
# labels, read as endpoints below) and on the ground truth (**Oracle**), and the paper's ablation
# rows on the ground truth: (a) `center` (CenterTrack on debris: centre, size and offset) and (b)
# `endpoints` (endpoint pairs and offsets, no RoI-FE). Our partner vectors are part of every
# endpoint row, (b) and (d) alike, so the ablation measures what the paper's rows add.
#
# **The endpoint target by hand.** One training streak: its left and right endpoints, each a
# Gaussian of width $\sigma$ cells around its stride-4 cell, cut at $3\sigma$, asserted against
# `sdtnet.targets`.

# %%
ABLATION_ROWS = {"center": "(a) centre", "endpoints": "(b) endpoints"}  # the paper's Table 3
net = sdtnet_config(debris)  # the full network of the params
one = data["train"].instances["annotations"][0]
frame0 = next(im for im in data["train"].instances["images"] if im["id"] == one["image_id"])
size = (frame0["height"], frame0["width"])
target = sdtnet.targets([one], [], size, net)["heatmap"].numpy()  # (2, H/4, W/4): left, right
ends = sorted(np.reshape(one["endpoints"], (2, 2)).tolist())  # left: the smaller x (then y)
rows_, cols_ = np.mgrid[: size[0] // 4, : size[1] // 4]
for channel, (x, y) in enumerate(ends):
    r, c = int(y // 4), int(x // 4)  # the stride-4 cell holding the endpoint
    d2 = (rows_ - r) ** 2 + (cols_ - c) ** 2
    by_hand = np.where(d2 <= (3 * net.sigma) ** 2, np.exp(-d2 / (2 * net.sigma**2)), 0.0)
    assert target[channel][r, c] == 1.0 and np.allclose(target[channel], by_hand, atol=1e-6)
pd.DataFrame(
    [
        {
            "endpoint": n,
            "x, y (px)": f"{x:.1f}, {y:.1f}",
            "cell (row, col)": (int(y // 4), int(x // 4)),
        }
        for n, (x, y) in zip(("left", "right"), ends, strict=True)
    ]
)

# %% [markdown]
# **Its training sets.** The annotation-free network learns from the teacher's TTA + fusion labels
# of the training videos: each label's endpoints are read off its mask (the long axis of the
# mask's minimum-area rectangle, moved in by the blur margin: `obb.mask_endpoints`, 1.0 px median
# error per endpoint against the simulator), and labels of consecutive frames are linked into
# tracks by their endpoints (`endpoint_labels`): the offsets it learns are the teacher's notion of
# motion. Checked here against the simulator's endpoints, which no training sees:

# %%
af_labels = endpoint_labels(
    labels["teacher TTA+fusion"]["train"],
    data["train"].instances["images"],
    radius=net.radius,
    width=debris["sdtnet"]["label_width"],
)
gt_by_image = {}
for a in data["train"].instances["annotations"]:
    gt_by_image.setdefault(a["image_id"], []).append(np.reshape(a["endpoints"], (2, 2)))
errors = []
for lab in af_labels:  # each label's distance to the nearest true streak, the pair's order free
    e = np.reshape(lab["endpoints"], (2, 2))
    d = [
        min(np.abs(e - g).max(), np.abs(e[::-1] - g).max())
        for g in gt_by_image.get(lab["image_id"], [])
    ]
    errors.append(min(d, default=np.inf))
errors = np.asarray(errors)
af_check = pd.Series(
    {
        "true streaks": len(data["train"].instances["annotations"]),
        "labels": len(af_labels),
        "labels within 3 px of a true streak": int((errors <= 3).sum()),
        "median endpoint error (px)": float(np.median(errors)) if len(errors) else math.nan,
        "pseudo tracks": len({lab["track_id"] for lab in af_labels}),
        "true tracks": len(
            {(a["video_id"], a["track_id"]) for a in data["train"].instances["annotations"]}
        ),
    }
)
af_check.round(2)

# %% [markdown]
# All trainings, the three YOLO students and the four SDT-Nets, run side by side as Ray tasks;
# each SDT-Net tracks the test videos itself before it returns.

# %%
t0 = time.perf_counter()
sdt_sets = {
    "SDT-Net": ({**data["train"].instances, "annotations": af_labels}, "full"),
    "SDT-Net Oracle": (data["train"].instances, "full"),
    **{
        f"SDT-Net Oracle {ABLATION_ROWS[v]}": (data["train"].instances, v)
        for v in debris["sdtnet"]["ablation"]
    },
}
calls |= {
    name: partial(
        train_and_track_sdtnet,
        inst,
        data["train"].image_dir,
        work / "sdtnet" / name.replace(" ", "_").replace("(", "").replace(")", ""),
        {**debris, "device": device},
        seed,
        {s: data[s] for s in TEST_SPLITS},
        variant,
    )
    for name, (inst, variant) in sdt_sets.items()
}
trained = ray_cluster.run_all(calls, ray_cluster.ClusterConfig.from_params(cluster), "trainings")
labels |= {name: trained[name][0] for name in train_sets}
sdt_tracks = {name: trained[name][0] for name in sdt_sets}
t_stage[f"train ({len(calls)} networks, side by side)"] = time.perf_counter() - t0
pd.DataFrame(
    [{"network": n, "seconds (train + predict/track)": trained[n][1]} for n in calls]
).round(1)

# %% [markdown]
# **The embedding pairing on one frame.** The annotation-free network on the second frame of the
# first dense test video (its first frame decoded first, to draw $H_{t-1}$): every peak of the
# left and right heatmaps with its embedding value, and the pairs `decode` makes, one-to-one by
# the Hungarian method. The paper pairs by the embedding alone (eq. 10: within $\Delta/2$); ours
# measured that this pairs close, parallel fragments wrongly about half the time
# (`benchmarks/sdtnet_pairing.py`), so `decode` also asks the RoI-FE mask: a pair must lie on it
# (mean probability along the segment $\ge$ `line_min`), costs `line_weight` $\times$ (1 − that)
# more, and may then differ in embedding by up to `mask_pair_distance`; and it asks the partner
# vectors: where each endpoint's vector points must lie within `reach_gate` pixels of the other
# endpoint, on average over the two ("reach miss" below). All of these were chosen on a dense
# validation render, never the test videos; on it, one network's dense pairs went from precision
# 0.60 / recall 0.44 without the partner vectors to 0.80 / 0.52 with them (embedding alone:
# 0.50 / 0.29; `benchmarks/sdtnet_pairing.py --val 8`).


# %%
def reach_miss(ends: np.ndarray, reach: np.ndarray) -> float:
    """By hand: a pair's endpoints (2, 2) px (left, right) and the partner vectors (4, h, w)
    cells -> the mean distance (px) between each endpoint and where the other one points."""
    (lc, lr), (rc, rr) = (np.floor(ends / 4).astype(int)).tolist()
    to_right = ends[0] + reach[0:2, lr, lc] * 4  # the left endpoint's vector, in pixels
    to_left = ends[1] + reach[2:4, rr, rc] * 4
    return (np.linalg.norm(to_right - ends[1]) + np.linalg.norm(to_left - ends[0])) / 2


model, net_af = sdtnet.load(work / "sdtnet" / "SDT-Net" / "sdtnet.pt")
dense = data["test_dense"]
video = dense.instances["images"][0]["video"]
frames = [
    dense.load_image(im["id"])
    for im in sorted(dense.instances["images"], key=lambda i: (i["video"], i["frame_id"]))
    if im["video"] == video
]
with torch.no_grad():
    empty = sdtnet.prev_heatmap([], frames[0].shape[:2], net_af)[None]
    first = sdtnet.decode(
        model(sdtnet.to_input(frames[0]), sdtnet.to_input(frames[0]), empty), net_af
    )[0]
    first, next_id = sdtnet.associate([], first, net_af.radius, 1)
    h_prev = sdtnet.prev_heatmap(sdtnet.as_annotations(first), frames[1].shape[:2], net_af)[None]
    out2 = model(sdtnet.to_input(frames[1]), sdtnet.to_input(frames[0]), h_prev)
    second = sdtnet.decode(out2, net_af)[0]
mask2 = torch.sigmoid(out2["mask"][0, 0]).numpy()  # the RoI-FE debris mask, stride 4
pairs = pd.DataFrame(
    [
        {
            "left x, y": f"{d.endpoints[0][0]:.1f}, {d.endpoints[0][1]:.1f}",
            "right x, y": f"{d.endpoints[1][0]:.1f}, {d.endpoints[1][1]:.1f}",
            "e left": d.embedding[0],
            "e right": d.embedding[1],
            "|e left - e right|": abs(d.embedding[0] - d.embedding[1]),
            "mask along the segment": sdtnet.segment_support(
                mask2, d.endpoints[:1], d.endpoints[1:]
            )[0, 0],
            "reach miss (px)": reach_miss(d.endpoints, out2["reach"][0].numpy()),
            "score": d.score,
        }
        for d in second
    ]
)
if len(pairs):  # every pair: close in embedding, on the mask, and pointing at each other
    assert (pairs["|e left - e right|"] <= net_af.mask_pair_distance + 1e-6).all()
    assert (pairs["mask along the segment"] >= net_af.line_min - 1e-6).all()
    assert (pairs["reach miss (px)"] <= net_af.reach_gate + 1e-4).all()
pairs.round(2)

# %%
fig, ax = plt.subplots(figsize=(4.2, 4.2))
ax.imshow(frames[1], cmap="gray")
cmap = plt.get_cmap("coolwarm")
values = np.concatenate([d.embedding for d in second]) if second else np.zeros(1)
lo, hi = float(values.min()), float(values.max()) + 1e-6
for d in second:
    (lx, ly), (rx, ry) = d.endpoints
    ax.plot([lx, rx], [ly, ry], color="yellow", lw=0.8)
    ax.scatter(
        [lx], [ly], marker="o", s=30, color=cmap((d.embedding[0] - lo) / (hi - lo)), edgecolors="k"
    )
    ax.scatter(
        [rx], [ry], marker="s", s=30, color=cmap((d.embedding[1] - lo) / (hi - lo)), edgecolors="k"
    )
ax.set_title(
    f"{video}, frame 2: left (o) and right (s) endpoints,\ncoloured by embedding, joined by pair",
    fontsize=8,
)
ax.axis("off")
fig.tight_layout()
viz.save_figure(fig, "debris_pairing", out_dir)

# %% [markdown]
# **The offset association on two frames.** Each second-frame detection's endpoints plus its
# predicted offsets, $c' = c + o$, are where it says it was; the cost of linking it to a
# first-frame track is the mean distance between those and the track's endpoints. By hand, the
# cost matrix and the Hungarian assignment within $r$, against `sdtnet.associate`:

# %%
guess = np.asarray([d.endpoints + d.offset for d in second], float).reshape(-1, 2, 2)
before = np.asarray([t.endpoints for t in first], float).reshape(-1, 2, 2)
cost = np.linalg.norm(guess[:, None] - before[None], axis=-1).mean(-1)  # (detections, tracks)
rows_i, cols_j = linear_sum_assignment(np.where(cost <= net_af.radius, cost, 1e9))
by_hand = {
    int(i): first[j].track_id
    for i, j in zip(rows_i, cols_j, strict=True)
    if cost[i, j] <= net_af.radius
}
linked, _ = sdtnet.associate(first, second, net_af.radius, next_id)
assert all(linked[i].track_id == tid for i, tid in by_hand.items())
pd.DataFrame(cost, columns=[f"track {t.track_id}" for t in first]).round(1)

# %% [markdown]
# One step beyond the paper: a track the network misses in a frame is not ended at once. For
# `max_age` frames (`debris.sdtnet.max_age`, chosen on validation renders) it waits where its last
# offset would carry it, and a detection there takes its id back (`sdtnet.associate_lost`; the
# paper's association is `max_age` 0).

# %% [markdown]
# ## 7 · Tracking with maintained trackers, scored by trackeval (§5.2)
#
# Each detector's per-frame detections (score $\ge$ `det_conf`) feed ByteTrack and OC-SORT from
# roboflow's `trackers` package; SDT-Net's rows are its own tracks (tracker `SDT-Net offsets`),
# scored the same way. The paper's metrics (§5.2) are computed by trackeval; boxes match
# at IoU $\ge 0.5$ for the **CLEAR MOT** metrics (Bernardin and Stiefelhagen, 2008: MOTA, MOTP and
# the per-frame counts they are built from, true positives TP, misses FN, false positives FP and
# identity switches IDS) and for the **Identity** metrics (IDF1 and its counts IDTP, IDFP, IDFN).
# **MOTA** counts every error over the ground-truth boxes
# (GT = TP + FN), **IDF1** is the F1 score of identity-consistent matches after the best one-to-one
# assignment of whole tracks, and **HOTA** is the geometric mean of detection and association
# accuracy, averaged over localisation thresholds $\alpha \in \{0.05, 0.10, \dots, 0.95\}$:
#
# $$\mathrm{MOTA} = 1 - \frac{\sum_t (\mathrm{FN}_t + \mathrm{FP}_t + \mathrm{IDS}_t)}{\sum_t \mathrm{GT}_t}, \qquad \mathrm{IDF1} = \frac{2\,\mathrm{IDTP}}{2\,\mathrm{IDTP} + \mathrm{IDFP} + \mathrm{IDFN}},$$
#
# $$\mathrm{HOTA}_\alpha = \sqrt{\mathrm{DetA}_\alpha \cdot \mathrm{AssA}_\alpha}, \qquad \mathrm{DetA}_\alpha = \frac{|\mathrm{TP}|}{|\mathrm{TP}| + |\mathrm{FN}| + |\mathrm{FP}|}, \qquad \mathrm{AssA}_\alpha = \frac{1}{|\mathrm{TP}|}\sum_{c \in \mathrm{TP}} \frac{|\mathrm{TPA}(c)|}{|\mathrm{TPA}(c)| + |\mathrm{FNA}(c)| + |\mathrm{FPA}(c)|}.$$
#
# The cell recomputes MOTA by hand from trackeval's CLEAR counts; py-motmetrics recomputes MOTA,
# IDF1 and IDS as a cross-check (columns `mm_*`, next cells).

# %%
t0 = time.perf_counter()
rows = []
for detector, by_split in labels.items():
    rows += score_detector(detector, by_split, data, debris)
for name, by_split in sdt_tracks.items():  # SDT-Net tracks by itself: its tracks are scored
    rows += score_sdtnet(name, by_split, data)
t_stage["track + evaluate"] = time.perf_counter() - t0
long = pd.DataFrame(rows)
gt_boxes = (long["CLR_TP"] + long["CLR_FN"]).clip(lower=1)  # GT = TP + FN
mota = 100 * (long["CLR_TP"] - long["CLR_FP"] - long["IDS"]) / gt_boxes  # = 1 - (FN+FP+IDS)/GT
assert np.allclose(mota, long["MOTA"])  # MOTA by hand from the CLEAR counts
long[["detector", "tracker", "split", "MOTA", "IDF1", "IDS", "HOTA", "DetA", "AssA"]].round(1)

# %%
display(Markdown(narrative.debris_mot_rows(long)))

# %% [markdown]
# The two metric libraries: IDF1 must be identical; MOTA may differ only by the ID switches the
# two count differently (after a frame in which a debris went unmatched, trackeval keeps a
# track's identity only from the previous frame, motmetrics from its last match), so
# $\Delta\mathrm{MOTA} = -\Delta\mathrm{IDS} / \mathrm{GT}$. The rows where they differ:

# %%
same = np.isclose(long["MOTA"], long["mm_MOTA"], atol=1e-6)
same &= np.isclose(long["IDF1"], long["mm_IDF1"], atol=1e-6)
differ = long[~same]
differ[
    ["detector", "tracker", "split", "MOTA", "mm_MOTA", "IDS", "mm_IDS", "IDF1", "mm_IDF1"]
].round(1)

# %%
display(Markdown(narrative.mot_cross_check(long)))

# %% [markdown]
# ## 8 · Table 2 beside the paper, and figures
#
# Our rows (simulated frames, small videos, CPU budget) sit beside the SDT-Net paper's Table 2
# (SDTD, full-size frames, trackers trained on labels): the comparison is of settings, not a
# benchmark on the same data.

# %%
table = tracking_table(rows, tables.PAPER_DEBRIS_TABLE2)
tables.write_table(table, "table_debris_tracking", out_dir)
display(
    Markdown(
        narrative.teachers_ran(["streak"], what="the rows `teacher …` of ours")
        + " The students learned from its labels, the Oracle from the ground truth; the paper's "
        "rows are trackers trained on SDTD's labels."
    )
)
# the headline columns here; every metric is in tables/table_debris_tracking.{csv,md}
headline = [c for c in table.columns if c.endswith((" MOTA", " HOTA"))]
table[["source", "detector", "tracker", *headline]].round(1)

# %%
display(Markdown(narrative.debris_table(table)))

# %% [markdown]
# The tracks on the first dense test video, four of its frames (a colour and a number per
# identity): the ground truth, the **best annotation-free box detector and tracker** (the highest
# dense-split HOTA among the teacher and YOLO-student rows) and the **annotation-free SDT-Net**.

# %%
split = "test_dense"
oracles = [d for d in long["detector"].unique() if "Oracle" in d]
box_rows = long[~long["detector"].str.startswith("SDT-Net")]
best = narrative.best_tracking_row(box_rows, "dense", exclude=oracles)  # None: nothing scored
shown, shown_tracker = (
    (best["detector"], best["tracker"]) if best is not None else ("student", "ocsort")
)
tracker_name = {"bytetrack": "ByteTrack", "ocsort": "OC-SORT"}.get(shown_tracker, shown_tracker)
ds = data[split]
video = ds.instances["images"][0]["video"]
gt = ground_truth_rows(ds.instances)[video]
frames_all = mot_rows_from_results(
    [r for r in labels[shown][split] if r["score"] >= debris["det_conf"]], ds.instances
)[video]
tracked = track_video(shown_tracker, frames_all, **debris["tracker_args"][shown_tracker])
sdt_video = sdt_tracks["SDT-Net"][split][video]

# %%
images = [im for im in ds.instances["images"] if im["video"] == video]
show = images[:: max(1, len(images) // 4)][:4]
panels_rows = [
    ("ground truth", gt),
    (f"{shown} + {tracker_name}", tracked),
    ("SDT-Net (annotation-free)", sdt_video),
]
fig, axes = plt.subplots(3, len(show), figsize=(2.6 * len(show), 8.1), squeeze=False)
for j, im in enumerate(show):
    frame = ds.load_image(im["id"])
    for i, (title, mot_rows) in enumerate(panels_rows):
        here = mot_rows[mot_rows[:, 0] == im["frame_id"]]
        draw_tracks(axes[i, j], frame, here, f"{title}, frame {im['frame_id']}")
fig.suptitle(
    f"{video}: ground truth (top), {shown} + {tracker_name} (middle, the best annotation-free "
    "box detector and tracker on the dense split), SDT-Net annotation-free (bottom)",
    fontsize=9,
)
fig.tight_layout()
viz.save_figure(fig, "debris_tracks", out_dir)

# %%
display(Markdown(narrative.tracks_shown(box_rows, shown, shown_tracker, "dense", exclude=oracles)))
mot = ["frame", "id"]
gt_df, tr_df = pd.DataFrame(gt[:, :2], columns=mot), pd.DataFrame(tracked[:, :2], columns=mot)
frame_ids = [im["frame_id"] for im in images]
display(Markdown(narrative.debris_tracks(gt_df, tr_df, video, frame_ids, shown, tracker_name)))
sdt_df = pd.DataFrame(sdt_video[:, :2], columns=mot)
display(
    Markdown(
        narrative.debris_tracks(gt_df, sdt_df, video, frame_ids, "SDT-Net", "its offsets", False)
    )
)

# %% [markdown]
# **SDT-Net against the box detectors**, by the numbers of the table (HOTA of the box rows: the
# mean over the two trackers, as below):

# %%
display(Markdown(narrative.debris_sdtnet(long)))

# %% [markdown]
# **Where the dense split is lost.** Both full SDT-Nets once more over the test splits, now fed the
# *true* previous-frame heatmap so that no tracking error feeds back
# (`sdtnet.detection_diagnosis`): the share of true endpoints with a heatmap peak within 6 px, and
# how many of the pairs `decode` forms are a true streak (both endpoints within 3 px). Then the
# targets this stage set itself, read off the table.

# %%
diagnosis = []
for name in ("SDT-Net", "SDT-Net Oracle"):
    net_model, net_config = sdtnet.load(work / "sdtnet" / name.replace(" ", "_") / "sdtnet.pt")
    for key, label in TEST_SPLITS.items():
        found = sdtnet.detection_diagnosis(net_model, net_config, data[key])
        diagnosis.append({"network": name, "split": label, **found})
diagnosis = pd.DataFrame(diagnosis)
display(Markdown(narrative.debris_targets(long, diagnosis)))
diagnosis.drop(columns=["left found", "right found", "correct"]).round(2)

# %% [markdown]
# MOTA and HOTA of every detector on both test splits, averaged over the two trackers.

# %%
ours = long.groupby(["detector", "split"])[["MOTA", "HOTA"]].mean().unstack("split")
detectors = list(labels) + list(sdt_tracks)
panels = {f"{m} (mean over trackers)": ours[m].reindex(detectors) for m in ("MOTA", "HOTA")}
fig = viz.bar_panels(panels, "MOTA / HOTA (%)", legend_title="test split")
viz.save_figure(fig, "debris_mota_hota", out_dir)

# %%
display(Markdown(narrative.debris_mota_hota(long)))

# %% [markdown]
# ## Summary
#
# The cell below reads the table back: whether each distilled student tracks better than its
# teacher, alone and with TTA + fusion (HOTA and MOTA, mean over the trackers; *better* or *worse*
# only where the two metrics agree, else *mixed*), how far it is from the Oracle, and the seconds
# each stage took.

# %%
display(Markdown(compare_to_teacher(table)))
pd.Series(t_stage, name="seconds").round(1)

# %%
display(Markdown(narrative.stage_times(pd.Series(t_stage))))
