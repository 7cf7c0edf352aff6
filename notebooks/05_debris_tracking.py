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
# 3. ByteTrack and OC-SORT on every detector, MOTA/IDF1/HOTA by trackeval (checked by motmetrics), beside Table 2.
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
# `{out_dir}/figures/debris_tracks.png`, `{out_dir}/figures/debris_mota_hota.png`. Frames,
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
from IPython.display import Markdown, display

from afss_utils import cluster as ray_cluster
from afss_utils import narrative, tables, viz
from afss_utils.coco import load_results
from afss_utils.config import quiet_ultralytics, seed_everything, with_defaults
from afss_utils.debris.simulation import zscale
from afss_utils.debris.stage import (
    TEST_SPLITS,
    compare_to_teacher,
    draw_tracks,
    make_videos,
    score_detector,
    tracking_table,
    train_and_predict,
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
    "videos": {"train": 48, "test_sparse": 6, "test_dense": 6},  # videos per split
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
# The **dense** test split has more than three debris per video, placed in pairs whose tracks cross.
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
# components: stars and hot pixels are round or tiny, debris are lines. Its score measures the
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
# The three trainings are independent: each is a Ray task on `cluster.cpus_per_training` threads
# (`afss_utils.cluster`), all submitted before any is awaited, and each predicts the test videos
# before it returns.

# %%
t0 = time.perf_counter()
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
trained = ray_cluster.run_all(calls, ray_cluster.ClusterConfig.from_params(cluster), "trainings")
labels |= {name: results for name, (results, _) in trained.items()}
t_stage[f"train+predict ({len(calls)} students, side by side)"] = time.perf_counter() - t0

# %% [markdown]
# ## 6 · Tracking with maintained trackers, scored by trackeval (§5.2)
#
# Each detector's per-frame detections (score $\ge$ `det_conf`) feed ByteTrack and OC-SORT from
# roboflow's `trackers` package. The paper's metrics (§5.2) are computed by trackeval; boxes match
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
# ## 7 · Table 2 beside the paper, and figures
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
table.round(1)

# %%
display(Markdown(narrative.debris_table(table)))

# %% [markdown]
# The tracks of the **best annotation-free detector and tracker** (the highest HOTA on the dense
# split among all rows but the Oracle's, which learned from the ground truth) on the first dense
# test video, against the ground truth, on four of its frames (a colour and a number per identity).

# %%
split = "test_dense"
best = narrative.best_tracking_row(long, "dense")  # None if nothing was scored
shown, shown_tracker = (
    (best["detector"], best["tracker"]) if best is not None else ("student +CF", "ocsort")
)
tracker_name = {"bytetrack": "ByteTrack", "ocsort": "OC-SORT"}.get(shown_tracker, shown_tracker)
ds = data[split]
video = ds.instances["images"][0]["video"]
gt = ground_truth_rows(ds.instances)[video]
frames_all = mot_rows_from_results(
    [r for r in labels[shown][split] if r["score"] >= debris["det_conf"]], ds.instances
)[video]
tracked = track_video(shown_tracker, frames_all, **debris["tracker_args"][shown_tracker])

# %%
images = [im for im in ds.instances["images"] if im["video"] == video]
show = images[:: max(1, len(images) // 4)][:4]
fig, axes = plt.subplots(2, len(show), figsize=(2.6 * len(show), 5.4))
for j, im in enumerate(show):
    frame = ds.load_image(im["id"])
    draw_tracks(axes[0, j], frame, gt[gt[:, 0] == im["frame_id"]], f"GT, frame {im['frame_id']}")
    draw_tracks(
        axes[1, j], frame, tracked[tracked[:, 0] == im["frame_id"]], f"{shown} + {tracker_name}"
    )
fig.suptitle(
    f"{video}: ground truth (top) and {shown} + {tracker_name} (bottom), chosen as the "
    "highest dense-split HOTA among the annotation-free pairs",
    fontsize=9,
)
fig.tight_layout()
viz.save_figure(fig, "debris_tracks", out_dir)

# %%
display(Markdown(narrative.tracks_shown(long, shown, shown_tracker, "dense")))
mot = ["frame", "id"]
gt_df, tr_df = pd.DataFrame(gt[:, :2], columns=mot), pd.DataFrame(tracked[:, :2], columns=mot)
frame_ids = [im["frame_id"] for im in images]
display(Markdown(narrative.debris_tracks(gt_df, tr_df, video, frame_ids, shown, tracker_name)))

# %% [markdown]
# MOTA and HOTA of every detector on both test splits, averaged over the two trackers.

# %%
ours = long.groupby(["detector", "split"])[["MOTA", "HOTA"]].mean().unstack("split")
panels = {f"{m} (mean over trackers)": ours[m].reindex(list(labels)) for m in ("MOTA", "HOTA")}
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
