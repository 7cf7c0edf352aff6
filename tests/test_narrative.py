"""The generated prose states the numbers of the table it is given, and changes with them."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from afss_utils import narrative


def _zero_shot(ap75_a: float) -> pd.DataFrame:
    rows = [
        ("lightbox", "a", "box", 70.0, 90.0, ap75_a),
        ("lightbox", "b", "box", 60.0, 85.0, 55.0),
        ("lightbox", "a", "mask", 40.0, 70.0, 30.0),
    ]
    return pd.DataFrame(rows, columns=["dataset", "model", "task", "AP", "AP50", "AP75"])


def test_zero_shot_names_the_best_teacher_with_its_numbers():
    text = narrative.zero_shot(_zero_shot(75.0), {"gsam2": "weights not found"})
    assert "**a** is best with box AP75 75.0" in text and "not run: `gsam2`" in text
    # the prose follows the data: when b wins, b is named
    assert "**b** is best with box AP75 55.0" in narrative.zero_shot(_zero_shot(50.0))


def test_tta_choice_counts_gains_and_states_them():
    rows = pd.DataFrame(
        {
            "dataset": ["x", "y"],
            "setting": ["vflip / wbf", "none / none"],
            "single": [50.0, 60.0],
            "chosen": [55.0, 60.0],
            "cost": [2.0, 1.0],
        }
    )
    text = narrative.tta_choice(rows)
    assert "TTA helps on 1 of 2 datasets" in text and "(+5.0)" in text and "2.0x" in text


def test_tta_views_reports_single_and_best():
    box = pd.DataFrame(
        {
            "dataset": ["x"] * 3,
            "fusion": ["none", "wbf", "wbf"],
            "views": [1, 2, 3],
            "AP75": [50.0, 60.0, 40.0],
        }
    )
    text = narrative.tta_views(box)
    assert "single view 50.0; best set of 2 views 60.0, of 3 views 40.0" in text


def test_confidence_filter_and_label_quality():
    cf = pd.DataFrame(
        [
            {
                "dataset": "x",
                "theta": 0.5,
                "train images": 10,
                "kept": 7,
                "box IoU kept": 0.8,
                "box IoU dropped": 0.4,
            }
        ]
    )
    text = narrative.confidence_filter(cf)
    assert "θ = 0.500 keeps 7 of 10" in text and "1 of 1 datasets" in text
    q = pd.DataFrame({"dataset": ["x", "x"], "labels": ["single", "tta"], "box_iou": [0.5, 0.75]})
    assert "single view 0.500, TTA 0.750" in narrative.label_quality(q)


def test_distillation_states_rows_and_effects():
    rows = [
        ("x", "teacher zero-shot", "t", 50.0),
        ("x", "Oracle", "Y", 90.0),
        ("x", "TTA+WBF", "Y", 60.0),
        ("x", "TTA+WBF+CF", "Y", 65.0),
        ("x", "TTA+WBF+CF+TR", "Y", 63.0),
    ]
    ours = pd.DataFrame(rows, columns=["dataset", "method", "model", "AP75"]).assign(task="box")
    text = narrative.distillation(ours, "t", ["Y"])
    assert "Oracle 90.0" in text and "TTA+WBF+CF 65.0 vs the teacher's 50.0 (+15.0)" in text
    assert "CF +5.0, TR -2.0" in text


def test_convergence_and_relabel_rounds():
    curve = pd.DataFrame({"epoch": [1, 2], "dataset": ["x", "x"], "AP": [10.0, 12.5]})
    text = narrative.convergence(curve, {"x": 50.0})
    assert "Oracle box AP 12.5 after 2 epochs (+2.5 over epoch 1)" in text
    assert "no checkpoint" in narrative.convergence(curve.iloc[:0], {})
    rr = pd.DataFrame(
        {
            "dataset": ["x", "x"],
            "student": ["s", "s"],
            "round": [0, 1],
            "task": ["box"] * 2,
            "AP75": [40.0, 42.0],
        }
    )
    assert "round 0 40.0, round 1 42.0" in narrative.relabel_rounds(rr)


def test_dataset_stats_names_the_hardest_domain():
    stats = pd.DataFrame(
        {
            "dataset": ["a", "b"],
            "split": ["test"] * 2,
            "gap %": [20.0, 5.0],
            "brightness %": [30.0, 10.0],
            "area p50 %": [9.0, 3.0],
            "truncated %": [30.0, 10.0],
        }
    )
    text = narrative.dataset_stats(stats)
    assert "`b` has the smallest object-background gap (5.0 %" in text


def test_require_names_the_notebook(tmp_path):
    narrative.require([tmp_path], "00")
    with pytest.raises(FileNotFoundError, match="Run notebook 02_tta_ablation first"):
        narrative.require([tmp_path / "missing.csv"], "02_tta_ablation")


def test_run_from_repo_root_only_moves_out_of_notebooks(tmp_path, monkeypatch):
    (tmp_path / "afss_utils").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert narrative.run_from_repo_root() == tmp_path.resolve()
    assert os.getcwd() == str(tmp_path.resolve())
    monkeypatch.chdir(tmp_path / "afss_utils")
    assert narrative.run_from_repo_root() == (tmp_path / "afss_utils").resolve()
