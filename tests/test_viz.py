"""Figures and dataset statistics (afss_utils.viz)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from afss_utils import coco, viz
from afss_utils.teachers.base import Prediction


def _scene(h=40, w=60):
    image = np.full((h, w, 3), 50, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[10:20, 5:25] = True
    image[mask] = 200
    return image, mask


def test_as_detections_accepts_every_shape():
    image, mask = _scene()
    ann = coco.make_annotation(1, 1, mask=mask)
    rec = coco.result_record(1, np.array([5, 10, 25, 20]), 0.8, mask)
    pred = Prediction(np.array([[5, 10, 25, 20]]), np.array([0.8]), mask[None])
    for obj in (pred, [ann], [rec], {"boxes": [[5, 10, 25, 20]], "masks": mask[None]}):
        d = viz.as_detections(obj, *mask.shape)
        np.testing.assert_allclose(d["boxes"], [[5, 10, 25, 20]])
        assert d["masks"].shape == (1, 40, 60) and (d["masks"][0] == mask).all()
    assert viz.as_detections([ann], 40, 60)["scores"] is None
    assert viz.as_detections([rec], 40, 60)["scores"][0] == pytest.approx(0.8)
    for empty in (None, [], Prediction.empty(40, 60)):
        assert viz.as_detections(empty, 40, 60)["boxes"].shape == (0, 4)


def test_overlay_tints_only_the_mask(tmp_path):
    image, mask = _scene()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    viz.overlay(image, np.array([[5, 10, 25, 20]]), mask[None], color="red", labels=["a"], ax=ax)
    assert len(ax.patches) == 1 and ax.texts[0].get_text() == "a"
    tint = ax.images[1].get_array()
    assert (tint[..., 3][mask] > 0).all() and (tint[..., 3][~mask] == 0).all()
    viz.overlay(image, None, None, ax=ax)  # empty: just the image
    plt.close(fig)


def test_sample_grid_and_save_figure(tmp_path):
    image, mask = _scene()
    pred = Prediction(np.array([[4, 9, 26, 21]]), np.array([0.5]), mask[None])
    rows = [
        [
            ("image", image, None),
            ("GT", image, [coco.make_annotation(1, 1, mask=mask)], "green"),
            ("teacher", image, pred),
            ("student", image, Prediction.empty(40, 60)),
        ],
        [("image", image, None)],
    ]
    fig = viz.sample_grid(rows, row_labels=["a", "b"], title="Figure 3")
    assert len(fig.axes) == 8
    assert [t.get_text() for t in fig.axes[2].texts] == ["0.50"]  # scores label the boxes
    path = viz.save_figure(fig, "grid", tmp_path)
    assert path == tmp_path / "figures" / "grid.png"
    with Image.open(path) as im:
        assert im.width > 400 and im.height > 100
    with pytest.raises(ValueError):
        viz.sample_grid([])


def test_image_statistics_measures_what_it_says():
    image, mask = _scene()
    s = viz.image_statistics(image, [coco.make_annotation(1, 1, mask=mask)])
    assert s["area"] == pytest.approx(mask.mean())
    assert s["object"] == pytest.approx(200 / 255, abs=1e-3)
    assert s["background"] == pytest.approx(50 / 255, abs=1e-3)
    assert s["gap"] == pytest.approx(150 / 255, abs=1e-3)
    assert s["truncated"] == 0.0
    # a box-only annotation touching the frame: box area, truncated
    box = coco.make_annotation(2, 1, box_xyxy=np.array([0, 10, 20, 20]))
    s = viz.image_statistics(image, [box])
    assert s["truncated"] == 1.0 and s["area"] == pytest.approx(200 / 2400)
    assert s["box_area"] == pytest.approx(200 / 2400)
    # no annotation: no object, background is the whole image
    s = viz.image_statistics(image, [])
    assert s["area"] == 0.0 and np.isnan(s["object"]) and s["truncated"] == 0.0
    assert s["box_area"] == 0.0
    # two objects: the box area is the largest box's (COCO's size is per object)
    small = coco.make_annotation(3, 1, box_xyxy=np.array([30, 5, 35, 9]))
    assert viz.image_statistics(image, [small, box])["box_area"] == pytest.approx(200 / 2400)


def test_image_statistics_are_exact_in_double_precision():
    # float32 BLAS sums gave values that moved in the 8th digit between runs (dataset_stats.csv);
    # the statistics must match an exactly rounded float64 reference
    import math

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    mask = np.zeros((97, 131), bool)
    mask[20:60, 30:90] = True
    s = viz.image_statistics(image, [coco.make_annotation(1, 1, mask=mask)])
    rgb = image.astype(np.float64)
    luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    mean = math.fsum(luma.ravel()) / luma.size
    assert s["brightness"] == pytest.approx(mean, rel=1e-13, abs=0)
    assert s["object"] == pytest.approx(math.fsum(luma[mask]) / mask.sum(), rel=1e-13, abs=0)
    assert s["background"] == pytest.approx(
        math.fsum(luma[~mask]) / (~mask).sum(), rel=1e-13, abs=0
    )
    std = math.sqrt(math.fsum((luma.ravel() - mean) ** 2) / luma.size)
    assert s["contrast"] == pytest.approx(std, rel=1e-12, abs=0)


def test_dataset_statistics_and_summary(tmp_path):
    from afss_utils.datasets import Dataset

    image, mask = _scene()
    (tmp_path / "a.png").write_bytes(b"")
    Image.fromarray(image).save(tmp_path / "a.png")
    inst = coco.make_instances(
        [coco.make_image(1, "a.png", 60, 40)], [coco.make_annotation(1, 1, mask=mask)]
    )
    df = viz.dataset_statistics(Dataset("d", inst, tmp_path), progress=False)
    assert list(df["image_id"]) == [1]
    summary = viz.summarize_statistics(df)
    assert summary["images"] == 1 and summary["area p50 %"] == pytest.approx(100 * mask.mean())
    box = coco.mask_to_xyxy(mask)
    box_share = (box[2] - box[0]) * (box[3] - box[1]) / (60 * 40)
    assert summary["box area p50 %"] == pytest.approx(100 * box_share)
    assert np.isnan(summary["earth in frame %"]) and np.isnan(summary["limb in frame %"])
    # synthetic images record the Earth's share of the frame: none, all of it, or a limb
    images = [
        coco.make_image(i, "a.png", 60, 40, earth_fraction=f)
        for i, f in enumerate([0.0, 1.0, 0.3, 0.6], 1)
    ]
    anns = [coco.make_annotation(i, i, mask=mask) for i in range(1, 5)]
    earth = viz.dataset_statistics(Dataset("e", coco.make_instances(images, anns), tmp_path))
    assert earth["earth"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert earth["limb"].tolist() == [0.0, 0.0, 1.0, 1.0]
    summary = viz.summarize_statistics(earth)
    assert summary["earth in frame %"] == 75.0 and summary["limb in frame %"] == 50.0
    empty = viz.summarize_statistics(
        viz.dataset_statistics(Dataset("e", coco.make_instances([], []), tmp_path))
    )
    assert empty["images"] == 0 and np.isnan(empty["area p50 %"])
    assert np.isnan(empty["box area p95 %"]) and np.isnan(empty["limb in frame %"])


def test_draw_boxes_adds_labelled_boxes_and_note_figure_holds_only_its_text():
    image, _ = _scene()
    fig, ax = plt.subplots()
    viz.overlay(image, np.array([[5, 10, 25, 20]]), ax=ax)
    viz.draw_boxes(ax, np.array([[30, 5, 59, 39]]), viz.EARTH_COLOR, ["Earth"], linestyle="--")
    viz.draw_boxes(ax, None)  # nothing to add
    assert len(ax.images) == 1 and len(ax.patches) == 2  # the image drawn once
    assert ax.patches[1].get_linestyle() == "--" and ax.texts[0].get_text() == "Earth"
    plt.close(fig)
    note = viz.note_figure("no confusion")
    assert [t.get_text() for t in note.axes[0].texts] == ["no confusion"]
    plt.close(note)


def _stats_frame(box_area, earth, limb):
    import pandas as pd

    return pd.DataFrame({"box_area": box_area, "earth": earth, "limb": limb})


def test_box_area_figure_histograms_and_earth_shares(tmp_path):
    import pandas as pd

    per_image = {
        "lightbox": _stats_frame([0.002, 0.01, 0.05, 0.3], [0.0, 1.0, 1.0, 0.0], [0, 1, 0, 0]),
        "real": _stats_frame([1e-6, 0.02, 0.0], [np.nan] * 3, [np.nan] * 3),  # Earth unknown
        "empty": _stats_frame([], [], []),
        "bare": pd.DataFrame(),
    }
    fig = viz.box_area_figure(per_image)
    ax, ax_earth = fig.axes
    assert ax.get_xscale() == "log"
    steps = {p.get_label(): p for p in ax.patches if p.get_label() in per_image}
    assert set(steps) == {"lightbox", "real"}  # nothing to draw for the empty frames
    # in percent of each dataset's images with a box: 4 x 25 %; 2 x 50 %, the tiny box counted
    # in the first bin (0.01 %) and the box-less image left out
    tops = {name: step.get_path().vertices for name, step in steps.items()}
    assert tops["lightbox"][:, 1].max() == pytest.approx(25.0)
    real = tops["real"][tops["real"][:, 1] > 0]
    assert real[0].tolist() == pytest.approx([0.01, 50.0]) and len(real) == 4
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "real renders p5–p95" in labels and "real renders p50" in labels
    # COCO's limits and the real median as vertical lines, at their percents
    xs = sorted(line.get_xdata()[0] for line in ax.lines)
    assert xs == pytest.approx([100 * 32**2 / (640 * 480), 1.1, 100 * 96**2 / (640 * 480)])
    # Earth panel: only the dataset that records the Earth, 50 % Earth and 25 % limb
    assert [t.get_text() for t in ax_earth.get_xticklabels()] == ["lightbox"]
    assert [b.get_height() for b in ax_earth.patches] == [50.0, 25.0]
    viz.save_figure(fig, "box_area", tmp_path)
    plt.close(fig)
    # no dataset records the Earth: the panel says so
    none = viz.box_area_figure({"real": per_image["real"]})
    assert [t.get_text() for t in none.axes[1].texts] == ["not recorded"]
    plt.close(none)


def _cells():
    import pandas as pd

    rows = [
        ("x", "none", "none", 1, 50.0),
        ("x", "hflip", "wbf", 2, 51.0),
        ("x", "vflip", "wbf", 2, 51.0),
        ("x", "hflip", "nms", 2, 49.0),
        ("x", "vflip", "nms", 2, 49.0),
        ("x", "hflip", "soft_nms", 2, 49.0),
        ("x", "vflip", "soft_nms", 2, 49.0),
        ("y", "none", "none", 1, 30.0),
        ("y", "hflip", "wbf", 2, 31.0),
    ]
    return pd.DataFrame(rows, columns=["dataset", "augmentations", "fusion", "views", "AP75"])


def test_ap_vs_views_draws_every_cell_apart_and_no_lines(tmp_path):
    fig = viz.ap_vs_views(_cells(), ["wbf", "nms", "soft_nms"], "none")
    ax = fig.axes[0]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    cells = offsets[offsets[:, 0] > 1.5]  # the single view sits at x = 1
    assert len(cells) == 6 and len({round(x, 6) for x in cells[:, 0]}) == 6  # equal AP75, apart
    assert [line.get_linestyle() for line in ax.lines] == ["--"]  # only the single-view line
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"hflip", "vflip", "wbf", "nms", "soft_nms"} <= set(labels)
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "y"
    viz.save_figure(fig, "views", tmp_path)
    with pytest.raises(ValueError):
        viz.ap_vs_views(_cells().iloc[:0], ["wbf"], "none")


def test_bar_panels_label_the_y_axis_and_keep_the_legend_off_the_bars():
    import pandas as pd

    frame = pd.DataFrame({"dense": [10.0, -5.0], "sparse": [60.0, 80.0]}, index=["a", "Oracle"])
    fig = viz.bar_panels({"MOTA": frame, "HOTA": frame}, "MOTA / HOTA (%)", "test split")
    assert fig.axes[0].get_ylabel() == "MOTA / HOTA (%)"
    assert all(ax.get_legend() is None for ax in fig.axes)  # one figure legend, below
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["dense", "sparse"]
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert box.y1 <= min(ax.get_window_extent().y0 for ax in fig.axes)  # under the panels
    with pytest.raises(ValueError):
        viz.bar_panels({}, "y")


def test_size_bin_label_reads_as_percent_of_the_image():
    assert viz.size_bin_label(0.0, 0.0025) == "< 0.25 %"
    assert viz.size_bin_label(0.01, 0.04) == "1–4 %"
    assert viz.size_bin_label(0.16, 1.0) == "≥ 16 %"


def test_ap_vs_size_one_panel_per_dataset_with_gaps_for_empty_bins(tmp_path):
    import pandas as pd

    edges = [(0.0, 0.01), (0.01, 0.16), (0.16, 1.0)]
    rows = [
        {"dataset": ds, "method": m, "share lo": lo, "share hi": hi, "n": n, "AP": ap}
        for ds, counts in (("a", (2, 0, 1)), ("b", (0, 3, 3)))
        for m, base in (("teacher", 20.0), ("Oracle", 90.0), ("student", 50.0))
        for (lo, hi), n in zip(edges, counts, strict=True)
        for ap in [base + 5 * lo if n else float("nan")]
    ]
    frame = pd.DataFrame(rows).sample(frac=1, random_state=0)  # rows in any order
    fig = viz.ap_vs_size(frame, methods=["teacher", "Oracle", "student"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    a, b = fig.axes
    assert [line.get_label() for line in a.lines] == ["teacher", "Oracle", "student"]
    y = a.lines[1].get_ydata()  # bins in order of size, the empty middle one a gap
    assert y[0] == 90.0 and np.isnan(y[1]) and y[2] == pytest.approx(90.8)
    assert np.isnan(b.lines[0].get_ydata()[0])
    x = [line.get_xdata()[0] for line in a.lines]  # methods side by side: equal values all show
    assert x == sorted(x) and len(set(x)) == 3 and x[1] == pytest.approx(0.0)
    ticks = [t.get_text() for t in a.get_xticklabels()]
    assert ticks == ["< 1 %\nn = 2", "1–16 %\nn = 0", "≥ 16 %\nn = 1"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["teacher", "Oracle", "student"]
    assert a.get_ylabel() == "test box AP"
    viz.save_figure(fig, "ap_vs_size", tmp_path)
    assert (tmp_path / "figures" / "ap_vs_size.png").stat().st_size > 1000
    assert a.get_xlim() == (-0.5, 2.5)  # an empty bin at the edge still shows
    plt.close(fig)
    with pytest.raises(ValueError):
        viz.ap_vs_size(frame.iloc[:0])


def test_convergence_figure_spells_out_the_loss_names():
    import pandas as pd

    curve = pd.DataFrame({"epoch": [1], "dataset": ["x"], "task": ["box"], "AP": [10.0]})
    history = [{"epoch": 1, "train/dfl_loss": 1.0, "train/sem_loss": 0.0, "train/other": 2.0}]
    fig = viz.convergence_figure(curve, history)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("dfl_loss (DFL: distribution focal loss")
    assert labels[1].startswith("sem_loss (semantic-mask") and labels[2] == "other"
    assert viz.convergence_figure(curve.iloc[:0], []).axes[0].get_legend() is None


def test_confusion_writes_counts_and_normalises_rows():
    metrics = {"confusion": np.array([[3, 1], [0, 0]]), "labels": ["a", "b"]}
    fig = viz.confusion(metrics, "types")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "0"]
    rows = ax.images[0].get_array()
    assert rows[0].tolist() == [0.75, 0.25] and rows[1].tolist() == [0, 0]  # an empty row stays 0
    assert ax.get_title() == "types" and ax.get_xlabel() == "predicted type"
    plt.close(fig)


def test_data_curve_plots_both_accuracies_on_log_images():
    import pandas as pd

    curve = pd.DataFrame(
        {
            "train images": [1200, 240, 4800],
            "epochs": [4, 20, 1],
            "steps": [300, 300, 300],
            "class accuracy %": [70.0, 60.0, 80.0],
            "center-cell accuracy": [0.5, 0.4, 0.55],
        }
    )
    fig = viz.data_curve(curve, target=90.0)
    ax, right = fig.axes
    assert ax.get_xscale() == "log" and ax.get_title() == "at 300 steps"
    x, y = ax.lines[0].get_data()
    assert list(x) == [240, 1200, 4800] and list(y) == [60.0, 70.0, 80.0]  # sorted by images
    assert list(ax.lines[1].get_ydata()) == [90.0, 90.0]  # the target
    assert list(right.lines[0].get_ydata()) == [0.4, 0.5, 0.55]
    assert [t.get_text() for t in ax.texts] == ["20 ep.", "4 ep.", "1 ep."]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["240", "1200", "4800"]
    plt.close(fig)
    empty = viz.data_curve(curve.iloc[:0])
    assert len(empty.axes[0].lines[0].get_xdata()) == 0
    plt.close(empty)


def test_center_heatmaps_one_panel_per_image_with_the_grid_probabilities(tmp_path):
    from test_centernet import make_rects  # tests/ is on sys.path (conftest)

    from afss_utils.datasets import open_coco
    from afss_utils.students.centernet import CenterNetStudent

    ds = open_coco(make_rects(tmp_path, 2))
    student = CenterNetStudent(imgsz=64, batch=2, epochs=1).train(
        ds.instances, ds.image_dir, tmp_path / "run"
    )
    fig = viz.center_heatmaps(student, ds, ds.image_ids)
    assert len(fig.axes) == 2
    for ax in fig.axes:  # one probability per cell of the G x G grid, written in it
        assert len(ax.texts) == student.grid**2
        assert all(0 <= float(t.get_text()) <= 1 for t in ax.texts)
    plt.close(fig)
