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
# # 00 · Datasets: synthetic spacecraft test beds
#
# *Reproduces:* Section IV-A (datasets) and the difficulties of **Fig. 1** of Hicsonmez et al.
#
# **What you will see**
# 1. Train, validation and test splits rendered (or opened) for every dataset of the params.
# 2. A grid of training images with their ground truth, one row per dataset (cf. Fig. 1).
# 3. Per-dataset statistics: object size, truncation, brightness, contrast and object-background gap,
#    and the distribution of box sizes against COCO's size limits and the real datasets' range.
#
# The paper evaluates annotation-free detection and segmentation on four test beds (Section IV-A):
# SPARK-2024, SPEED+ *Lightbox*, SPEED+ *Sunlamp* and TANGO. Of each, 500 images form an
# **unlabelled** training set that the teacher labels and the student learns from; the remaining
# images are the test set on which every AP of Tables I–III is measured. What makes them hard is
# named in the paper's Fig. 1: cluttered Earth backgrounds, low visibility, illumination changes and
# a spacecraft that blends with the planet behind it.
#
# None of these datasets (nor any model weights) can be downloaded by the study, so the default run
# embeds a procedural renderer (`afss_utils.synthetic`) whose domains mirror them:
#
# | domain | mirrors | what is hard |
# |---|---|---|
# | `lightbox` | SPEED+ Lightbox | diffuse light from several sides, Earth imagery behind, moderate contrast |
# | `sunlamp` | SPEED+ Sunlamp | one hard lamp, over-exposure, bloom and lens flare, deep shadows on black |
# | `earth` | SPARK-2024 / TANGO clutter | bright Earth limb and clouds behind the object, low contrast, blending |
#
# Three 3-D spacecraft models built from parts (a box bus with solar wings like Tango, a cylindrical
# relay satellite with a dish, a CubeSat with deployable panels and whip antennas) are rendered at
# random attitudes and distances, with stars, sensor noise, blur and compression artefacts. The
# ground-truth mask is the exact rendered silhouette and the box its tight box, so label noise in
# later stages comes from the teacher only.
#
# **Inputs:** the `datasets` entries of the params file. **Outputs:** `{data_dir}/{train,test}/`
# (COCO `annotations.json` + `images/`) for synthetic entries, the figures
# `{out_dir}/figures/dataset_samples.png` and `{out_dir}/figures/box_area.png`, and the table
# `{out_dir}/tables/dataset_stats.{csv,md}`.
# With `params/paper.yaml` the same notebook opens the authors' SPEED+, SPARK-2024 and TANGO layouts
# instead and generates nothing.

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from afss_utils import coco, narrative, synthetic, viz
from afss_utils.config import seed_everything
from afss_utils.datasets import open_split
from afss_utils.tables import write_table

# %% tags=["parameters"]
# --- run ---------------------------------------------------------------------------------
seed = 0
out_dir = "results"  # tables/, figures/
data_dir = "data/synthetic/default"  # where the splits are written (or read, for real layouts)
# --- datasets: one row-group of Tables I-III each (layout: synthetic | coco | speedplus | ...)
datasets = [
    {"name": "lightbox", "layout": "synthetic", "domain": "lightbox"},
    {"name": "sunlamp", "layout": "synthetic", "domain": "sunlamp"},
    {"name": "earth", "layout": "synthetic", "domain": "earth"},
]
# --- synthetic splits (images per domain) -------------------------------------------------
image_size = [512, 512]  # W H
num_train = 500  # unlabelled training images (the paper: 500)
num_val = 50  # labelled validation: every setting is chosen here
num_test = 100  # only ever reported
pool_training = True  # stage 03 trains one student on all datasets

# %% [markdown]
# ## 1 · Train and test splits
#
# Each synthetic domain gets `num_train` training, `num_val` validation and `num_test` test images
# of `image_size` (W, H) pixels. All domains are written into one pooled folder per split, each image
# tagged with its `domain`; `open_split` then gives the view of one domain, so a dataset of the
# paper corresponds to one domain here. The renderer is deterministic (same seed, same bytes) and
# the splits use different seeds (`seed`, `seed + 2` and `seed + 1`), so no image is in two splits.
# The **validation** split is the only labelled data any choice may look at (the best TTA setting of
# notebook 02, any threshold sweep); the **test** split is only ever reported, so no number of
# Tables I–III was tuned on the images it is measured on.
#
# The training split's ground truth is never shown to the teacher or the student; later stages use
# it only for the *Oracle* rows of Table III and to measure how good the pseudo-labels are.
# Rendering is skipped when a split already exists with the same settings, which `generate`
# records in the json's `info`.

# %%
narrative.run_from_repo_root()
seed_everything(seed)
domains = [d["domain"] for d in datasets if d["layout"] == "synthetic"]


# %%
def ensure_synthetic(split: str, num_images: int, split_seed: int) -> str:
    """Render {data_dir}/{split} unless it already holds these settings."""
    ann_file = Path(data_dir) / split / "annotations.json"
    wanted = {
        "domains": domains,
        "num_images_per_domain": num_images,
        "seed": split_seed,
        "size": list(image_size),
        "renderer_version": synthetic.RENDERER_VERSION,
    }
    if ann_file.is_file():
        info = coco.read_json(ann_file).get("info", {})
        if all(info.get(k) == v for k, v in wanted.items()):
            return "kept"
    synthetic.generate(ann_file.parent, domains, num_images, split_seed, tuple(image_size))
    return "generated"


# %%
if domains:
    plan = [("train", num_train, seed), ("val", num_val, seed + 2), ("test", num_test, seed + 1)]
    for split, n, split_seed in plan:
        status = ensure_synthetic(split, n, split_seed)
        print(f"{split}: {status} ({n} images x {len(domains)} domains, seed {split_seed})")

# %% [markdown]
# Every entry of `datasets` is now opened the way the later stages will open it. For
# synthetic entries this is the domain's view of the pooled split; for the paper's layouts it reads
# the authors' COCO files (and converts their mask PNGs), failing with a message that names any
# missing file.

# %%
splits = {
    (spec["name"], split): open_split(spec, split, data_dir)
    for spec in datasets
    for split in ("train", "val", "test")
    if spec["layout"] == "synthetic" or split != "val" or spec.get("val")
}

# %%
overview = pd.DataFrame(
    [
        {"dataset": name, "split": split, "images": len(ds), "masks": ds.has_masks}
        | {"annotations": str(ds.annotation_file)}
        for (name, split), ds in splits.items()
    ]
)
overview

# %%
n_img = overview.groupby("split")["images"].sum()
test = overview[overview["split"] == "test"]
masks = ", ".join(f"`{r.dataset}` {'yes' if r.masks else 'boxes only'}" for r in test.itertuples())
display(
    Markdown(
        f"**What to look at:** {len(datasets)} datasets with {n_img.get('train', 0)} training, "
        f"{n_img.get('val', 0)} validation and {n_img.get('test', 0)} test images in all; "
        f"masks: {masks}."
    )
)

# %% [markdown]
# ## 2 · What the images look like
#
# One row per dataset: the first training images with their ground truth overlaid (mask lightly
# tinted, outline and tight box in green). Compare with the paper's Fig. 1: the object ranges from a few
# percent of the frame to close-ups cut by the image border, and in the `earth` domain it often
# sits on a background as bright as itself.

# %%
n_show = 5
rows = []
for spec in datasets:
    ds = splits[(spec["name"], "train")]
    rows.append(
        [
            (f"#{i}", ds.load_image(i), ds.annotations(i), viz.GT_COLOR)
            for i in ds.image_ids[:n_show]
        ]
    )
fig = viz.sample_grid(
    rows, row_labels=[spec["name"] for spec in datasets], cell_size=2.0, alpha=0.15
)
viz.save_figure(fig, "dataset_samples", out_dir)

# %%
display(
    Markdown(
        f"**What to look at:** {len(rows)} rows of {len(rows[0]) if rows else 0} "
        "training images; compare the backgrounds row by row with the table below, "
        "which puts numbers on them."
    )
)

# %% [markdown]
# ## 3 · Dataset statistics
#
# How hard is each test bed? Per image, with $L(p) \in [0, 1]$ the luma of pixel $p$ and $M$ the
# ground-truth object pixels (the box for box-only datasets such as SPARK-2024):
#
# - **area**: $|M| / (W H)$, the share of the frame the object covers (quantiles p10/p50/p90);
# - **box area**: the largest ground-truth box's $w h / (W H)$, the size COCO's small / medium /
#   large split uses (quantiles p5/p50/p95: the range the real datasets span);
# - **truncated**: the object's box touches the image border;
# - **brightness** and **contrast**: mean and standard deviation (RMS contrast) of $L$;
# - **object** and **background**: mean $L$ inside and outside $M$, and their
#
# $$\text{gap} = \Bigl|\tfrac{1}{|M|}\textstyle\sum_{p \in M} L(p) - \tfrac{1}{|\bar M|}\sum_{p \notin M} L(p)\Bigr| ,$$
#
# a small gap meaning the spacecraft blends with what is behind it;
# - **earth in frame** and **limb in frame**: the shares of images showing any of the Earth, and
#   its edge (part of the frame, not all of it); the synthetic sets record the Earth's share of
#   every frame, the real datasets do not (empty).
#
# All values are in percent.

# %%
per_image = {key: viz.dataset_statistics(ds) for key, ds in splits.items()}
stats = pd.DataFrame(
    [
        {"dataset": name, "split": split, **viz.summarize_statistics(df)}
        for (name, split), df in per_image.items()
    ]
)
write_table(stats, "dataset_stats", out_dir)
stats

# %%
display(Markdown(narrative.dataset_stats(stats)))

# %% [markdown]
# The box-area quantiles above, as a distribution: per dataset, the share of its **training**
# images (the ones the teacher labels and the student learns from) whose largest box covers a
# given share of the frame, on a log scale from 0.01 % to 100 %. The dotted lines are COCO's
# small / medium / large limits as shares of the image (the sizes of the AP small / medium /
# large columns), the grey band the p5–p95 range of real SPEED+-style renders (0.4 % to 9 %,
# median 1.1 % dashed): a curve inside the band spans the sizes a real test set holds, one to
# its right is easier than the real data. The bars on the right give each dataset's share of
# training images with the Earth, and with its limb, in frame (datasets that do not record the
# Earth are left out).

# %%
train_stats = {name: df for (name, split), df in per_image.items() if split == "train"}
fig = viz.box_area_figure(train_stats)
viz.save_figure(fig, "box_area", out_dir)

# %% [markdown]
# ## Summary
#
# The datasets are on disk in COCO format, and every later stage opens them through the same
# `open_split` call. The figure shows the illumination regimes the paper's datasets are known for;
# the table puts numbers on them: how small the objects get (area quantiles), how often they are
# cut by the frame, how dark the frames are, and how little the object stands out from its
# background (gap). The cell below reads the test rows of that table. Next, notebook 01 runs the
# zero-shot teachers on the test splits (Table I).

# %%
test = stats[stats["split"] == "test"].set_index("dataset")
train_images = sum(len(splits[(spec["name"], "train")]) for spec in datasets)
plan = "one pooled student, AP per test split" if pool_training else "one student per dataset"
print(
    f"{len(datasets)} datasets, {train_images} training / {int(test['images'].sum())} test images"
)
print(f"stage 03 trains {plan}")
print(f"least object-background gap (blending): {test['gap %'].idxmin()}")
print(
    f"darkest frames: {test['brightness %'].idxmin()}, brightest: {test['brightness %'].idxmax()}"
)
test[["area p50 %", "truncated %", "brightness %", "gap %"]]
