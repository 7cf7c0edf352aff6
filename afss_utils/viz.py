"""Figures: boxes and masks over images, sample grids (the paper's Figure 3), saving PNGs,
and the per-image visibility statistics that the dataset figure and table describe.

Everything draws on matplotlib axes and works headless (Agg) — the study runs in CI and on
servers with no display. Detections may be given as a :class:`~afss_utils.teachers.base.
Prediction`, a dict with ``boxes``/``masks``/``scores``, or a list of COCO annotations or
results records (``bbox`` xywh pixels, RLE ``segmentation``), so ground truth, teacher
pseudo-labels and student predictions draw the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

# Headless by default, but never override a backend a user or Jupyter (inline) has chosen.
if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from afss_utils import coco  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from afss_utils.students.centernet import CenterNetStudent

DPI = 120
GT_COLOR = "#00e676"  # ground truth: green
PRED_COLOR = "#ff9100"  # predictions: orange
EARTH_COLOR = "#e040fb"  # the Earth's box (images[].earth_box): magenta, apart from its blues


def as_detections(obj: Any, height: int, width: int) -> dict[str, np.ndarray | None]:
    """Normalise prediction-like input to ``{"boxes", "masks", "scores"}``.

    obj: None, a Prediction, a dict with ``boxes`` (N, 4) xyxy pixels and optional ``masks``
         (N, H, W) bool and ``scores`` (N,), or a list of COCO annotations / results records.
    Returns boxes (N, 4) float xyxy pixels, masks (N, H, W) bool or None, scores (N,) or None.
    """
    if obj is None:
        return {"boxes": np.zeros((0, 4), np.float32), "masks": None, "scores": None}
    if hasattr(obj, "boxes") and hasattr(obj, "scores"):  # Prediction
        return {
            "boxes": np.asarray(obj.boxes, np.float32).reshape(-1, 4),
            "masks": obj.masks,
            "scores": np.asarray(obj.scores),
        }
    if isinstance(obj, dict):
        masks = obj.get("masks")
        scores = obj.get("scores")
        return {
            "boxes": np.asarray(obj.get("boxes", np.zeros((0, 4))), np.float32).reshape(-1, 4),
            "masks": None if masks is None else np.asarray(masks, bool),
            "scores": None if scores is None else np.asarray(scores),
        }
    records = list(obj)
    boxes = coco.xywh_to_xyxy(np.asarray([r["bbox"] for r in records], np.float32).reshape(-1, 4))
    masks = None
    if records and all("segmentation" in r for r in records):
        masks = np.stack([coco.rle_to_mask(r["segmentation"], height, width) for r in records])
    scores = None
    if records and all("score" in r for r in records):
        scores = np.asarray([r["score"] for r in records], np.float32)
    return {"boxes": boxes, "masks": masks, "scores": scores}


def overlay(
    image: np.ndarray,
    boxes: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    color: str = PRED_COLOR,
    labels: Sequence[str] | None = None,
    ax: plt.Axes | None = None,
    alpha: float = 0.4,
    title: str | None = None,
) -> plt.Axes:
    """Draw an image with xyxy boxes and semi-transparent masks (with their outlines).

    image: (H, W, 3) uint8 RGB or (H, W) grey
    boxes: (N, 4) xyxy pixels; masks: (N, H, W) bool; labels: N strings drawn at the box corner
    Returns the axes (a new figure's when ``ax`` is None).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    image = np.asarray(image)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    rgba = to_rgba(color)
    if masks is not None and len(masks):
        union = np.asarray(masks, bool).any(axis=0)
        tint = np.zeros((*union.shape, 4), np.float32)
        tint[union] = (*rgba[:3], alpha)
        ax.imshow(tint, interpolation="nearest")
        for m in masks:  # outlines keep thin parts (antennas) visible under the tint
            if m.any():
                ax.contour(m.astype(np.float32), levels=[0.5], colors=[rgba], linewidths=0.8)
    draw_boxes(ax, boxes, color, labels)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def draw_boxes(
    ax: plt.Axes,
    boxes: np.ndarray | None,
    color: str = PRED_COLOR,
    labels: Sequence[str] | None = None,
    linestyle: str = "-",
) -> plt.Axes:
    """Outline (N, 4) xyxy pixel boxes on axes already showing their image, each with its label
    (if any) at the top-left corner; adds boxes of another kind to a cell of :func:`overlay` or
    :func:`sample_grid` without drawing the image again."""
    rgba = to_rgba(color)
    boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        ax.add_patch(
            Rectangle(
                (x0, y0), x1 - x0, y1 - y0, fill=False, color=rgba, linewidth=1.5, ls=linestyle
            )
        )
        if labels is not None and i < len(labels) and labels[i]:
            ax.text(
                x0,
                y0,
                labels[i],
                color="black",
                fontsize=7,
                va="bottom",
                bbox={"facecolor": rgba, "edgecolor": "none", "pad": 1},
            )
    return ax


def note_figure(text: str, width: float = 4.0, height: float = 1.0) -> plt.Figure:
    """A figure holding only ``text``, centred: what a figure file shows when there is nothing
    to draw (so no stale figure of an earlier run stays behind under the same name)."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    ax.set_axis_off()
    return fig


def sample_grid(
    rows: Sequence[Sequence[tuple]],
    row_labels: Sequence[str] | None = None,
    cell_size: float = 2.4,
    color: str = PRED_COLOR,
    title: str | None = None,
    alpha: float = 0.3,
) -> plt.Figure:
    """A grid of images with detections overlaid; one inner sequence per row.

    Each cell is ``(title, image, detections)`` or ``(title, image, detections, color)``:
    image (H, W, 3) uint8, detections anything :func:`as_detections` takes (None = the bare
    image). Figure 3 of the paper is one row per dataset with cells image / GT / teacher /
    student. Short rows leave empty cells. Scores, when present, label the boxes; ``alpha`` is
    the mask tint's opacity.
    """
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("sample_grid needs at least one row with one cell")
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell_size * n_cols, cell_size * n_rows), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(row):
                ax.set_axis_off()
                continue
            cell_title, image, dets, *rest = row[c]
            h, w = np.asarray(image).shape[:2]
            d = as_detections(dets, h, w)
            labels = None if d["scores"] is None else [f"{s:.2f}" for s in d["scores"]]
            overlay(
                image,
                d["boxes"],
                d["masks"],
                color=rest[0] if rest else color,
                labels=labels,
                ax=ax,
                alpha=alpha,
                title=cell_title,
            )
        if row_labels is not None and r < len(row_labels):
            # set_axis_off hides ylabel, so write the row label as text left of the first cell
            axes[r][0].text(
                -0.04,
                0.5,
                row_labels[r],
                transform=axes[r][0].transAxes,
                rotation=90,
                ha="right",
                va="center",
                fontsize=9,
            )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, name: str, out_dir: str | os.PathLike, dpi: int = DPI) -> Path:
    """Write ``{out_dir}/figures/{name}.png`` and return its path (the figure stays open)."""
    path = Path(out_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


# ---------------------------------------------------------------------------- dataset statistics
def _luminance(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float64 luma in [0, 1] (Rec. 601 weights).

    Element-wise in float64, not a float32 matmul: BLAS sums depend on memory alignment and
    thread count, which made dataset_stats.csv differ between runs in the 8th digit."""
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        return image / 255.0
    return (0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]) / 255.0


def object_mask(annotations: Sequence[dict], height: int, width: int) -> np.ndarray:
    """(H, W) bool union of the GT objects: their masks, or their boxes for box-only datasets."""
    union = np.zeros((height, width), bool)
    for ann in annotations:
        if "segmentation" in ann:
            union |= coco.rle_to_mask(ann["segmentation"], height, width)
        else:
            x0, y0, x1, y1 = np.round(coco.xywh_to_xyxy(ann["bbox"])[0]).astype(int)
            union[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return union


def image_statistics(image: np.ndarray, annotations: Sequence[dict]) -> dict[str, float]:
    """How visible the object is in one image; all values are fractions in [0, 1].

    image: (H, W, 3) uint8 RGB; annotations: COCO annotations (``bbox`` xywh, optional RLE).
    Returns area (object pixels / image pixels), box_area (the largest GT box / image pixels:
    the size COCO's small / medium / large use), truncated (1.0 if a GT box touches the frame),
    brightness and contrast (mean and std of luma), object / background (mean luma inside and
    outside the object) and gap = |object - background| (small: the object blends in).
    """
    h, w = np.asarray(image).shape[:2]
    luma = _luminance(image)
    obj = object_mask(annotations, h, w)
    boxes = coco.xywh_to_xyxy(
        np.asarray([a["bbox"] for a in annotations], np.float32).reshape(-1, 4)
    )
    # half a pixel of slack: boxes are tight pixel boxes with exclusive x2, y2
    cut = (
        (boxes[:, 0] <= 0.5)
        | (boxes[:, 1] <= 0.5)
        | (boxes[:, 2] >= w - 0.5)
        | (boxes[:, 3] >= h - 0.5)
    )
    inside = float(luma[obj].mean()) if obj.any() else np.nan
    outside = float(luma[~obj].mean()) if (~obj).any() else np.nan
    box_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return {
        "area": float(obj.mean()),
        "box_area": float(box_area.max() / (w * h)) if len(box_area) else 0.0,
        "truncated": float(cut.any()),
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "object": inside,
        "background": outside,
        "gap": abs(inside - outside),
    }


def dataset_statistics(dataset: Any, progress: bool = True) -> pd.DataFrame:
    """One row of :func:`image_statistics` per image of a Dataset (plus ``image_id``), and where
    the images record the Earth's share of the frame (``earth_fraction``, synthetic sets):
    ``earth`` (1.0 when any of the Earth is in frame) and ``limb`` (1.0 when its edge is: part
    of the frame, not all of it); NaN for datasets that do not record it."""
    import pandas as pd

    from afss_utils.progress import bar

    rows = []
    for image_id in bar(dataset.image_ids, desc=f"stats {dataset.name}", progress=progress):
        stats = image_statistics(dataset.load_image(image_id), dataset.annotations(image_id))
        share = dataset.image_info(image_id).get("earth_fraction")
        earth = {"earth": np.nan, "limb": np.nan}
        if share is not None:
            earth = {"earth": float(share > 0), "limb": float(0 < share < 1)}
        rows.append({"image_id": image_id, **stats, **earth})
    columns = [
        "image_id",
        "area",
        "box_area",
        "truncated",
        "brightness",
        "contrast",
        "object",
        "background",
        "gap",
        "earth",
        "limb",
    ]
    return pd.DataFrame(rows, columns=columns)


def summarize_statistics(per_image: pd.DataFrame) -> dict[str, float]:
    """Summary of :func:`dataset_statistics` in percent: image count, object area quantiles
    (p10/p50/p90), box area quantiles (p5/p50/p95: the range the real datasets span), truncated
    share, means of brightness, contrast, object, background, gap, and the shares of images with
    the Earth and with its limb in frame (NaN where not recorded)."""
    pct = per_image.drop(columns="image_id", errors="ignore") * 100.0
    area = list(pct["area"].quantile([0.1, 0.5, 0.9])) if len(pct) else [np.nan] * 3
    box = list(pct["box_area"].quantile([0.05, 0.5, 0.95])) if len(pct) else [np.nan] * 3
    return {
        "images": len(per_image),
        "area p10 %": area[0],
        "area p50 %": area[1],
        "area p90 %": area[2],
        "box area p5 %": box[0],
        "box area p50 %": box[1],
        "box area p95 %": box[2],
        "truncated %": pct["truncated"].mean(),
        **{
            f"{k} %": pct[k].mean()
            for k in ("brightness", "contrast", "object", "background", "gap")
        },
        "earth in frame %": pct["earth"].mean(),
        "limb in frame %": pct["limb"].mean(),
    }


def _share(df: pd.DataFrame, column: str) -> float:
    """Mean of a 1.0 / 0.0 column in percent, NaN rows skipped; NaN when none is recorded."""
    if column not in df or not df[column].notna().any():
        return np.nan
    return float(df[column].mean()) * 100.0


def box_area_figure(per_image: dict[str, pd.DataFrame]) -> plt.Figure:
    """How large the objects are and how often the Earth is in frame, per dataset.

    per_image: dataset name -> :func:`dataset_statistics` frame (columns ``box_area``, a share
               of the image in [0, 1], and ``earth`` / ``limb``, 1.0 / 0.0 or NaN)
    Left: a step histogram per dataset of the largest GT box's share of the image, in percent of
    the dataset's images, over log-spaced bins from 0.01 % to 100 % (shares below 0.01 % are
    counted in the first bin, images without a box are left out), with COCO's small / medium /
    large limits (:data:`afss_utils.evaluate.SIZE_LIMITS`) as dotted lines and the real
    renders' p5-p95 range (:data:`afss_utils.narrative.REAL_BOX_AREA`) shaded, its median dashed. Right: the share
    of images with the Earth and with its limb in frame, bars per dataset; datasets that do not
    record the Earth (NaN) are left out, and the panel says so when none does.
    """
    from afss_utils.evaluate import SIZE_LIMITS
    from afss_utils.narrative import REAL_BOX_AREA

    fig, (ax, ax_earth) = plt.subplots(
        1, 2, figsize=(9.5, 3.4), gridspec_kw={"width_ratios": [2.3, 1]}
    )
    bins = np.logspace(-4, 0, 41) * 100.0  # percent
    for i, (name, df) in enumerate(per_image.items()):
        share = np.asarray(df["box_area"] if "box_area" in df else [], np.float64)
        share = share[np.isfinite(share) & (share > 0)]
        if not len(share):
            continue
        pct = np.clip(share * 100.0, bins[0], bins[-1])
        weights = np.full(len(pct), 100.0 / len(pct))
        ax.hist(pct, bins=bins, weights=weights, histtype="step", lw=1.5, color=f"C{i}", label=name)
    lo, mid, hi = REAL_BOX_AREA  # percent
    ax.axvspan(lo, hi, color="0.5", alpha=0.15, lw=0, label="real renders p5–p95")
    ax.axvline(mid, color="0.3", ls="--", lw=1, label="real renders p50")
    for limit, text in zip(SIZE_LIMITS, ("small | medium", "medium | large"), strict=True):
        ax.axvline(limit * 100.0, color="k", ls=":", lw=1)
        ax.text(
            limit * 100.0,
            0.97,
            f" COCO {text}",
            transform=ax.get_xaxis_transform(),
            rotation=90,
            ha="right",
            va="top",
            fontsize=7,
        )
    ax.set_xscale("log")
    ax.set_xlim(bins[0], bins[-1])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g} %"))
    ax.set(xlabel="largest GT box, share of the image", ylabel="images (%)", title="box area")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")  # where the histograms are not: small or large objects
    shares = {
        name: [_share(df, "earth"), _share(df, "limb")]
        for name, df in per_image.items()
        if not np.isnan(_share(df, "earth"))
    }
    names = list(shares)
    earth, limb = (np.nan_to_num([shares[n][k] for n in names]) for k in (0, 1))
    x = np.arange(len(names))
    for dx, values, color, label in ((-0.2, earth, "C0", "Earth"), (0.2, limb, "C1", "limb")):
        bars = ax_earth.bar(x + dx, values, 0.4, color=color, label=f"{label} in frame")
        ax_earth.bar_label(bars, fmt="%.0f", fontsize=7)  # 0 % is a bar too, only invisible
    ax_earth.set_xticks(x, names, rotation=20)
    ax_earth.set_ylim(0, 112)  # room for the label of a 100 % bar
    ax_earth.set_yticks(range(0, 101, 20))
    ax_earth.set(ylabel="images (%)")
    ax_earth.grid(axis="y", alpha=0.3)
    if names:  # above the panel, where no bar reaches (a title's place)
        ax_earth.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    else:
        ax_earth.text(
            0.5, 0.5, "not recorded", ha="center", va="center", transform=ax_earth.transAxes
        )
    fig.tight_layout()
    return fig


# ultralytics' training-loss columns, spelled out in the legend (read from ultralytics/utils/loss.py)
LOSS_LABELS = {
    "box_loss": "box_loss (CIoU of the boxes)",
    "seg_loss": "seg_loss (mask BCE)",
    "cls_loss": "cls_loss (class BCE)",
    "dfl_loss": "dfl_loss (DFL: distribution focal loss, box edges as distributions)",
    "sem_loss": "sem_loss (semantic-mask BCE + Dice; 0 without a semantic head, as YOLO11)",
}


def convergence_figure(
    curve: pd.DataFrame, history: Sequence[dict], reference: dict[str, float] | None = None
) -> plt.Figure:
    """Training losses per epoch (left) and test box AP per dataset at each checkpoint (right).

    curve:     rows ``epoch, dataset, task, AP`` (see ``distill.convergence_curve``)
    history:   per-epoch dicts with ``epoch`` and ``train/*`` loss columns (ultralytics'
               results.csv)
    reference: dataset -> a box AP drawn dashed in the dataset's colour (e.g. the teacher's)
    """
    import pandas as pd

    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    hist = pd.DataFrame(list(history))
    for col in [c for c in hist.columns if str(c).startswith("train/")]:
        name = col.removeprefix("train/")
        ax_loss.plot(hist["epoch"], hist[col], label=LOSS_LABELS.get(name, name))
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    if len(hist):
        ax_loss.legend(fontsize=7)
    box = curve[curve["task"] == "box"] if len(curve) else curve
    for i, (name, d) in enumerate(box.groupby("dataset", sort=False) if len(box) else []):
        color = f"C{i}"
        ax_ap.plot(d["epoch"], d["AP"], marker="o", color=color, label=name)
        if reference and name in reference:
            ax_ap.axhline(reference[name], ls="--", lw=1, color=color)
    ax_ap.set(xlabel="epoch", ylabel="test box AP", title="test box AP (dashed: teacher)")
    ax_ap.set_ylim(0, 100)
    if len(box):
        ax_ap.legend(fontsize=7)
    for ax in (ax_loss, ax_ap):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- ablation and bars
FUSION_MARKERS = ("o", "s", "^", "D", "v", "P")


def ap_vs_views(
    box: pd.DataFrame,
    methods: Sequence[str],
    no_fusion: str = "none",
    metric: str = "AP75",
) -> plt.Figure:
    """One panel per dataset: ``metric`` of every (augmentation set, fusion method) cell against
    its number of views, as points, never lines: sets of the same size are different families
    (flips, rotations, scales, colours), not one series.

    box: rows ``dataset``, ``augmentations``, ``fusion``, ``views``, ``metric``; the row whose
    fusion is ``no_fusion`` is the single view, drawn as a dashed line. Colour: the set; marker
    and a small sideways offset: the fusion method, so methods with equal values all show.
    """
    datasets = list(dict.fromkeys(box["dataset"]))
    if not datasets:
        raise ValueError("ap_vs_views needs at least one dataset row")
    cells = box[box["fusion"] != no_fusion]
    sets = list(dict.fromkeys(cells["augmentations"]))
    methods = list(methods)
    offsets = np.linspace(-0.24, 0.24, len(methods)) if len(methods) > 1 else np.zeros(1)
    # sets of one size (hflip, vflip) side by side too, a little apart within each method
    size = cells.drop_duplicates("augmentations").set_index("augmentations")["views"]
    nudge = {}
    for _, same in size.groupby(size):
        for i, aug in enumerate(same.index):
            nudge[aug] = 0.07 * (i - (len(same) - 1) / 2)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False, sharey=False
    )
    for ax, name in zip(axes[0], datasets, strict=True):
        d = box[box["dataset"] == name]
        single = d.loc[d["fusion"] == no_fusion, metric]
        if len(single):
            ax.axhline(float(single.iloc[0]), color="0.3", ls="--", lw=1)
            ax.scatter([1], [float(single.iloc[0])], marker="x", color="0.2", zorder=3)
        for j, method in enumerate(methods):
            marker = FUSION_MARKERS[j % len(FUSION_MARKERS)]
            for k, aug in enumerate(sets):
                cell = d[(d["fusion"] == method) & (d["augmentations"] == aug)]
                if cell.empty:
                    continue
                color = f"C{k % 10}"
                ax.scatter(
                    cell["views"] + offsets[j] + nudge.get(aug, 0.0),
                    cell[metric],
                    marker=marker,
                    s=36,
                    facecolors=color if j == 0 else "none",
                    edgecolors=color,
                    linewidths=1.3,
                    zorder=3,
                )
        views = sorted(set(d["views"]))
        ax.set_xticks(views)
        ax.set(title=name, xlabel="views (incl. identity)", ylabel=f"test box {metric}")
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color="0.3", ls="--", marker="x", lw=1, label=f"single view ({no_fusion})"),
        *[
            Line2D([], [], ls="none", marker="o", color=f"C{k % 10}", label=aug)
            for k, aug in enumerate(sets)
        ],
        *[
            Line2D(
                [],
                [],
                ls="none",
                marker=FUSION_MARKERS[j % len(FUSION_MARKERS)],
                color="0.2",
                markerfacecolor="0.2" if j == 0 else "none",
                label=m,
            )
            for j, m in enumerate(methods)
        ],
    ]
    fig.tight_layout()
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(handles), 7),
        fontsize=8,
        frameon=False,
    )
    return fig


def bar_panels(
    panels: dict[str, pd.DataFrame], ylabel: str, legend_title: str | None = None
) -> plt.Figure:
    """Grouped bars, one panel per entry of ``panels`` (title -> DataFrame: index the groups on
    the x axis, columns the bars of a group), a shared y axis labelled ``ylabel``, a line at 0
    and one legend below the panels, where it covers no bar."""
    if not panels:
        raise ValueError("bar_panels needs at least one panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (title, frame) in zip(axes, panels.items(), strict=True):
        frame.plot.bar(ax=ax, rot=20, legend=False)
        ax.set_title(title)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout()
    if handles:
        fig.legend(
            handles,
            labels,
            title=legend_title,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=len(labels),
            frameon=False,
        )
    return fig


def size_bin_label(lo: float, hi: float) -> str:
    """A bin of box area as a share of the image, in percent: '< 0.25 %', '0.25–1 %', '≥ 16 %'
    (the last for a bin reaching the whole image, ``hi >= 1``)."""
    if lo <= 0:
        return f"< {100 * hi:g} %"
    if hi >= 1:
        return f"≥ {100 * lo:g} %"
    return f"{100 * lo:g}–{100 * hi:g} %"


def ap_vs_size(
    rows: pd.DataFrame, metric: str = "AP", methods: Sequence[str] | None = None
) -> plt.Figure:
    """One panel per dataset: box ``metric`` against the bin of ground-truth box area, one line
    per method, a shared y axis (0-100) and one legend below the panels.

    rows: one per (dataset, method, bin), columns ``dataset``, ``method``, ``share lo``,
          ``share hi`` (the bin's box area as shares of the image), ``n`` (its GT objects) and
          ``metric`` (see ``evaluate.ap_by_size_bins``). The bins are categories on the x axis,
          each labelled with its share and its GT objects; a bin without objects (NaN) leaves a
          gap in the lines and a grey tick label. Each method sits a little sideways of the
          bin's center, so equal values all show.
    methods: the lines' order (default: as they first appear in ``rows``).
    """
    datasets = list(dict.fromkeys(rows["dataset"]))
    if not datasets:
        raise ValueError("ap_vs_size needs at least one dataset row")
    methods = list(dict.fromkeys(rows["method"])) if methods is None else list(methods)
    offsets = np.linspace(-0.1, 0.1, len(methods)) if len(methods) > 1 else np.zeros(1)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False, sharey=True
    )
    for ax, name in zip(axes[0], datasets, strict=True):
        d = rows[rows["dataset"] == name]
        n = d.groupby(["share lo", "share hi"])["n"].max()  # bins in order of size
        table = d.set_index(["share lo", "share hi", "method"])[metric].unstack("method")
        table = table.reindex(index=n.index, columns=methods)
        x = np.arange(len(n))
        for j, method in enumerate(methods):
            ax.plot(
                x + offsets[j],
                table[method],
                marker="o",
                color=f"C{j % 10}",
                label=method,
                clip_on=False,
            )
        labels = [f"{size_bin_label(lo, hi)}\nn = {int(k)}" for (lo, hi), k in n.items()]
        ax.set_xticks(x, labels, fontsize=7)
        for tick, k in zip(ax.get_xticklabels(), n, strict=True):
            if not k:
                tick.set_color("0.6")
        ax.set(title=name, xlabel="GT box area (share of the image)", ylim=(0, 100))
        ax.set_xlim(-0.5, len(n) - 0.5)  # every bin shows, an empty one at the edge too
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test box {metric}")
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=len(labels),
            fontsize=8,
            frameon=False,
        )
    return fig


def center_heatmaps(student: CenterNetStudent, dataset: Any, image_ids: list[int]) -> plt.Figure:
    """The report's Fig. 3.1: per image, the center probability of every grid cell over the
    letterboxed input, the argmax cell's box (green) beside the ground truth (white dashed) and
    its predicted type. Returns the matplotlib figure."""
    from afss_utils.students.centernet import decode
    from afss_utils.students.training import letterbox

    n = max(1, len(image_ids))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    images = [dataset.load_image(i) for i in image_ids]
    heads, scales = student.forward_images(images) if images else ({}, [])
    s, g = student.imgsz, student.grid
    for j, (ax, image_id) in enumerate(zip(axes[0], image_ids, strict=False)):
        canvas, scale = letterbox(images[j], s)
        prob = 1 / (1 + np.exp(-heads["center"][j, 0]))
        ax.imshow(canvas)
        ax.imshow(prob, extent=(0, s, s, 0), cmap="magma", alpha=0.45, vmin=0, vmax=1)
        for k in range(1, g):
            ax.axhline(k * s / g, color="w", lw=0.3)
            ax.axvline(k * s / g, color="w", lw=0.3)
        for r in range(g):
            for c in range(g):
                ax.text(
                    (c + 0.5) * s / g,
                    (r + 0.5) * s / g,
                    f"{prob[r, c]:.2f}",
                    color="w",
                    fontsize=5,
                    ha="center",
                    va="center",
                )
        (det,) = decode(heads["center"][j, 0], heads["box"][j], heads["cls"][j], s, 1.0, s, s) or (
            None,
        )
        for a in dataset.annotations(image_id):
            x, y, w, h = np.array(a["bbox"]) * scale
            ax.add_patch(Rectangle((x, y), w, h, fill=False, ec="w", ls="--", lw=1))
        title = dataset.image_info(image_id).get("model", "")
        if det is not None:
            x0, y0, x1, y1 = det.box
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.5))
            title = f"GT {title} / pred {student.categories[det.label]['name']}"
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def confusion(metrics: dict, title: str = "") -> plt.Figure:
    """The (C, C) confusion matrix of :func:`afss_utils.classification.classification_metrics`,
    rows ground truth, columns prediction, each row normalised; counts written in the cells."""

    conf, labels = np.asarray(metrics["confusion"]), metrics["labels"]
    rows = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for k in range(len(labels)):
            ax.text(
                k,
                i,
                str(conf[i, k]),
                ha="center",
                va="center",
                color="w" if rows[i, k] > 0.5 else "k",
                fontsize=8,
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted type")
    ax.set_ylabel("true type")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def data_curve(curve, target: float | None = None) -> plt.Figure:
    """Accuracy against distinct training images at one step budget: ``curve`` a table with
    ``train images``, ``epochs``, ``class accuracy %`` and ``center-cell accuracy`` (one row per
    training set). Log x; class accuracy (%) on the left axis, center-cell accuracy on the right;
    each point labelled with its epochs; ``target`` (%) as a dashed line."""
    c = curve.sort_values("train images")
    x = c["train images"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(x, c["class accuracy %"], "o-", color="C0", label="class accuracy")
    for xi, yi, ep in zip(x, c["class accuracy %"], c["epochs"], strict=True):
        ax.annotate(
            f"{int(ep)} ep.", (xi, yi), textcoords="offset points", xytext=(4, -12), fontsize=7
        )
    if target is not None:
        ax.axhline(target, color="C0", ls="--", lw=0.8, label=f"target {target:g} %")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{int(v)}" for v in x])  # the measured sizes, not log-scale decades
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("distinct training images (same optimiser steps)")
    ax.set_ylabel("class accuracy (%)", color="C0")
    ax.set_ylim(0, 100)
    right = ax.twinx()
    right.plot(x, c["center-cell accuracy"], "s--", color="C1", label="center-cell accuracy")
    right.set_ylim(0, 1)
    right.set_ylabel("center-cell accuracy", color="C1")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    steps = sorted(set(int(s) for s in c.get("steps", [])))
    if steps:
        ax.set_title(
            f"at {steps[0]} steps" if len(steps) == 1 else f"at {steps[0]}–{steps[-1]} steps",
            fontsize=9,
        )
    fig.tight_layout()
    return fig
