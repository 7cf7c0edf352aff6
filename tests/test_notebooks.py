"""The whole study, every notebook in order through the runner, with params/smoke.yaml.

Asserts on what the notebooks write (tables' shape, rows, value ranges; figures; manifest), so a
notebook that runs but writes the wrong table fails here. Output goes to a temporary folder,
never over the committed results/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from afss_utils.config import PARAMS_DIR, load_params, named_grid
from afss_utils.evaluate import SIZE_BIN_EDGES
from afss_utils.run import run_study

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

SMOKE = PARAMS_DIR / "smoke.yaml"
FIGURES = [
    "dataset_samples",
    "box_area",
    "zero_shot_examples",
    "earth_confusions",
    "tta_ap75_vs_views",
    "distillation_bars",
    "figure3_visual_results",
    "label_iou_histograms",
    "confidence_vs_iou",
    "theta_sweep",
    "relabel_rounds",
    "ap_vs_size",
    "oracle_convergence",
    "debris_tracks",
    "debris_mota_hota",
    "center_heatmaps",
    "center_confusion",
    "center_confusion_s8",
    "center_data_curve",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_study")
    manifest = run_study(SMOKE, out, progress=False)
    return out, manifest, load_params(SMOKE)


def _ours(out, name):
    df = pd.read_csv(out / "tables" / f"{name}.csv")
    assert (out / "tables" / f"{name}.md").is_file()
    return df[~df["source"].astype(str).str.startswith("paper")] if "source" in df else df


def _in_range(df, cols=("AP", "AP50", "AP75")):
    """COCO's ordering, which a table with swapped or mislabelled columns breaks: precision
    falls as the IoU threshold rises, so AP (0.50:0.95) and AP75 never exceed AP50; and some
    cell is above 0 (an evaluator silently returning zeros fails)."""
    values = df[list(cols)].astype(float).dropna()
    assert len(values) and (values.to_numpy() > 0).any()
    assert (values["AP75"] <= values["AP50"] + 1e-6).all()
    assert (values["AP"] <= values["AP50"] + 1e-6).all()


def reused_teacher_labels(out):
    """Notebook 03's table of its teacher test labels: (images, taken from 01/02) per row."""
    nb = json.loads((out / "executed" / "03_distillation.ipynb").read_text())
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            lines = "".join(o.get("data", {}).get("text/plain", "")).splitlines()
            if lines and lines[0].split()[-3:] == ["from", "notebooks", "01/02"]:
                return [tuple(int(v) for v in line.split()[-2:]) for line in lines[1:]]
    raise AssertionError("notebook 03 shows no table of reused teacher labels")


def test_every_notebook_ran_and_was_recorded(study):
    out, manifest, _ = study
    names = list(manifest["notebooks"])
    assert names == [
        "00_datasets",
        "01_zero_shot_comparison",
        "02_tta_ablation",
        "03_distillation",
        "04_visualisation",
        "05_debris_tracking",
        "06_spacecraft_classification",
    ]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert list(on_disk["notebooks"]) == names
    assert all(entry["status"] == "ok" for entry in on_disk["notebooks"].values())
    for name in names:
        nb = json.loads((out / "executed" / f"{name}.ipynb").read_text())
        errors = [
            o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
        ]
        assert not errors, f"{name}: {errors[:1]}"


def test_center_tables_hold_both_strides_and_the_data_curve(study):
    """Notebook 06: one row per output stride (same steps, full split) beside the report's, a
    per-type column for each, and one curve point per training-set size at that step budget."""
    out, _, params = study
    cls = params["classification"]
    summary = pd.read_csv(out / "tables" / "center_classification.csv")
    ours = summary[summary["source"].str.startswith("ours")]
    assert [s.split()[2] for s in ours["source"]] == [str(s) for s in cls["strides"]]
    assert ours["steps"].nunique() == 1 and (ours["s / step"] > 0).all()
    assert ours["train images"].tolist() == [3 * cls["train_per_domain"]] * len(ours)
    per_class = pd.read_csv(out / "tables" / "center_classification_per_class.csv")
    assert [c for c in per_class.columns if c.endswith("accuracy %")] == [
        f"stride {s} accuracy %" for s in cls["strides"]
    ]
    curve = pd.read_csv(out / "tables" / "center_data_curve.csv")
    sizes = sorted({*cls["curve"], cls["train_per_domain"]})
    assert curve["train images"].tolist() == [3 * n for n in sizes]
    assert curve["epochs"].is_monotonic_decreasing  # fewer images, more epochs over them


def test_table1_has_a_row_per_dataset_teacher_and_task(study):
    out, _, params = study
    ours = _ours(out, "table1_zero_shot")
    n = len(params["datasets"]) * len(params["zero_shot_teachers"]) * 2
    assert len(ours) == n
    assert set(ours["model"]) == set(params["zero_shot_teachers"])
    assert (ours["seconds_per_image"] > 0).all()
    _in_range(ours)
    paper = pd.read_csv(out / "tables" / "table1_zero_shot.csv")
    assert (paper["source"] == "paper (real data)").sum() == 24  # Table I has 24 rows


def test_earth_confusions_counts_only_splits_that_record_the_earth(study):
    """Notebook 01: one row per teacher and dataset whose test split records ``earth_box``
    (none, for splits rendered without it: the table is then empty but has its columns)."""
    out, _, params = study
    table = pd.read_csv(out / "tables" / "earth_confusions.csv")
    assert (out / "tables" / "earth_confusions.md").is_file()
    assert list(table.columns) == [
        "teacher",
        "dataset",
        "images with Earth in frame",
        "confusions",
        "share %",
    ]
    assert set(table["teacher"]) <= set(params["zero_shot_teachers"])
    assert len(table) <= len(params["datasets"]) * len(params["zero_shot_teachers"])
    assert (table["confusions"] <= table["images with Earth in frame"]).all()
    # the smoke renders record the Earth, and the figure is of the study's teacher (a loop over
    # the teachers once rebound `teacher` to the last one's object: "<...> did not run")
    assert params["teacher"] in set(table["teacher"])
    nb = nbformat.read(out / "executed" / "01_zero_shot_comparison.ipynb", as_version=4)
    shown = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "object at 0x" not in shown and "did not run: no Earth" not in shown


def test_tta_ablation_covers_the_grid(study):
    out, _, params = study
    ablation = _ours(out, "tta_ablation")
    tta_grid = named_grid("tta_grid", params["tta_grid"])
    fusion_grid = named_grid("fusion_grid", params["fusion_grid"])
    cells = sum(1 if not row["augs"] else len(fusion_grid) for row in tta_grid)
    # every cell on the validation split (where the setting is chosen) and the test split
    assert len(ablation) == len(params["datasets"]) * cells * 2 * 2
    assert ablation.groupby("split").size().to_dict() == {
        "test": len(ablation) // 2,
        "val": len(ablation) // 2,
    }
    assert set(ablation["augmentations"]) == {row["name"] for row in tta_grid}
    _in_range(ablation)
    table2 = _ours(out, "table2_tta")
    assert set(table2["dataset"]) == {d["name"] for d in params["datasets"]}
    assert table2["method"].str.startswith("single view").any()
    assert table2["method"].str.startswith("best TTA on val").any()
    # Table II reports the chosen setting's *test* numbers, never the validation ones
    test_box = ablation[(ablation["split"] == "test") & (ablation["task"] == "box")]
    for _, row in table2[table2["task"] == "box"].iterrows():
        setting = row["method"].split(": ", 1)[1]
        augs, fusion = setting.split(" / ")
        cell = test_box[
            (test_box["dataset"] == row["dataset"])
            & (test_box["augmentations"] == augs)
            & (test_box["fusion"] == fusion)
        ]
        assert cell["AP75"].iloc[0] == pytest.approx(row["AP75"])


def test_validation_split_is_disjoint_from_train_and_test(study):
    import hashlib

    from afss_utils.datasets import open_split

    _, _, params = study
    digests = {}
    for split in ("train", "val", "test"):
        ds = open_split(params["datasets"][0] | {"domain": "lightbox"}, split, params["data_dir"])
        assert len(ds) == params[f"num_{split}"]
        digests[split] = {
            hashlib.sha256(ds.image_path(i).read_bytes()).hexdigest() for i in ds.image_ids
        }
    assert not digests["val"] & digests["train"] and not digests["val"] & digests["test"]
    assert not digests["train"] & digests["test"]


def test_table3_rows_students_and_relabel_rounds(study):
    out, _, params = study
    ours = _ours(out, "table3_distillation")
    methods = {"Oracle", "TTA+WBF", "TTA+WBF+CF", "TTA+WBF+CF+TR"}
    assert methods <= set(ours["method"])
    assert {"teacher zero-shot", "teacher TTA+WBF"} <= set(ours["method"])
    students = ours[ours["method"].isin(methods)]
    # YOLO11-seg: box + mask, EfficientDet and CenterNet: box only, every dataset and method
    per_dataset = len(methods) * (2 + 1 + 1)
    assert set(students["model"]) == {"YOLOv11", "EfficientDet", "CenterNet-R18"}
    assert len(students) == len(params["datasets"]) * per_dataset
    assert (students["train_seconds"] > 0).all()
    assert (students["train_images"] >= 1).all()
    # every trained row, CF and TR included, is a mean over the same `seeds` trainings
    assert (students["seeds"] == params["seeds"]).all()
    assert students["AP spread"].notna().all()
    runs = pd.read_csv(out / "tables" / "table3_seed_runs.csv")
    assert len(runs) == params["seeds"] * len(students)
    assert sorted(runs["seed"].unique()) == [params["seed"] + i for i in range(params["seeds"])]
    # equal optimiser steps: every row of a student took at least its budget of steps
    sections = (("YOLOv11", "yolo"), ("EfficientDet", "efficientdet"), ("CenterNet-R18", "center"))
    for model, section in sections:
        assert (runs.loc[runs["model"] == model, "steps"] >= params[section]["steps"]).all()
    _in_range(ours)
    rounds = pd.read_csv(out / "tables" / "relabel_rounds.csv")
    assert sorted(rounds["round"].unique()) == list(range(params["relabel_rounds"] + 1))
    assert rounds.groupby(["student", "round"])["seed"].nunique().eq(params["seeds"]).all()
    # what each round trained on: the dataset's images that kept a label, and their quality
    assert (rounds["kept_images"] <= rounds["dataset_images"]).all()
    assert rounds["label_box_iou"].between(0, 1).all()
    # the filter's table: the params' rule (Table III's) and the mean rule beside it
    cf = pd.read_csv(out / "tables" / "confidence_filter.csv")
    assert set(cf["rule"]) == {str(params["confidence_threshold"]), "mean"}
    assert (cf["kept"] <= cf["train images"]).all() and cf["paper kept %"].between(79, 94).all()
    quality = pd.read_csv(out / "tables" / "pseudo_label_quality.csv")
    assert quality["box_iou"].between(0, 1).all()


def test_ap_by_size_has_every_bin_of_each_dataset_and_method(study):
    """Notebook 04: teacher, Oracle and student per dataset and box-size bin; every test object
    in one bin, and AP exactly where a bin has objects."""
    out, _, params = study
    by_size = _ours(out, "ap_by_size")
    assert len(by_size) == len(params["datasets"]) * 3 * (len(SIZE_BIN_EDGES) - 1)
    assert by_size["method"].str.startswith(("teacher zero-shot", "Oracle", "student")).all()
    objects = by_size.groupby(["dataset", "method"])["n"].sum()
    assert (objects == params["num_test"]).all()  # one spacecraft per synthetic image
    assert (by_size["AP"].isna() == (by_size["n"] == 0)).all()
    _in_range(by_size)


def text_lines(executed: Path) -> dict[int, int]:
    """Lines of text an executed notebook shows, per cell index: stream text, and the
    ``text/plain`` and ``text/markdown`` of its display data and results (a figure adds the one
    line of its ``<Figure ...>`` placeholder)."""
    counts = {}
    for i, cell in enumerate(nbformat.read(executed, 4).cells):
        n = 0
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                n += len(o["text"].splitlines())
            for mime in ("text/plain", "text/markdown"):
                n += len(o.get("data", {}).get(mime, "").splitlines())
        counts[i] = n
    return counts


def test_executed_notebooks_show_little_text(study):
    # logs, progress bars and long tables stay out of the notebooks: a reader scrolls lessons
    for path in sorted((study[0] / "executed").glob("*.ipynb")):
        counts = text_lines(path)
        worst = max(counts, key=counts.get)
        source = nbformat.read(path, 4).cells[worst].source.strip().splitlines() or [""]
        assert sum(counts.values()) < 300, (
            f"{path.name}: {sum(counts.values())} lines of text output, the most in cell "
            f"{worst} ({counts[worst]} lines), which starts: {source[0][:80]!r}"
        )


def test_executed_notebooks_hold_no_progress_bars_or_library_noise(study):
    # a frozen bar ("0%|") and Ray's C++ log lines or a library's deprecation warnings tell a
    # reader of the executed copy nothing (the runner silences them in its kernels)
    noise = re.compile(r"\d+%\||core_worker\.cc|FutureWarning|DeprecationWarning")
    for path in sorted((study[0] / "executed").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, 4).cells):
            for o in cell.get("outputs", []):
                text = o.get("text", "") + o.get("data", {}).get("text/plain", "")
                found = noise.search(text)
                assert not found, f"{path.name} cell {i}: {text[found.start() :][:120]!r}"


def test_figures_written(study):
    out, _, _ = study
    for name in FIGURES:
        path = out / "figures" / f"{name}.png"
        assert path.is_file() and path.stat().st_size > 1000, name


def test_distillation_scores_the_teacher_with_the_labels_of_01_and_02(study):
    # the pooled test set is the three domains' test sets that 01 and 02 labelled with the
    # params' teacher and settings: notebook 03 labels none of its images again
    rows = reused_teacher_labels(study[0])
    assert len(rows) == 2 and all(n > 0 and reused == n for n, reused in rows)
