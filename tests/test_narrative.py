"""The generated prose states the numbers of the table it is given, and changes with them."""

from __future__ import annotations

import math
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
    assert "Oracle box AP 12.5 after 2 epochs (+2.5 since epoch 1)" in text
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
    seeds = pd.concat([rr.assign(seed=0), rr.assign(seed=1, AP75=[44.0, 40.0])])
    assert "round 0 42.0 (seeds 40.0–44.0), round 1 41.0 (seeds 40.0–42.0)" in (
        narrative.relabel_rounds(seeds)
    )


def test_convergence_verdict_flips_between_rising_and_flat():
    epochs = [4, 8, 12, 16]
    rising = pd.DataFrame({"epoch": epochs, "dataset": "x", "AP": [40.0, 50.0, 56.3, 64.5]})
    text = narrative.convergence(rising, {"x": 70.0})
    assert "(+14.5 since epoch 8)" in text  # the last two intervals
    assert "still rising on `x`" in text and "not converged" in text
    flat = rising.assign(AP=[40.0, 60.0, 60.4, 60.8])
    text = narrative.convergence(flat, {"x": 70.0})
    assert "flat everywhere" in text and "converged at this budget" in text
    assert "not converged" not in text
    one = narrative.convergence(rising.iloc[:1], {})  # one checkpoint: no gain, not "rising"
    assert "(+0.0 since epoch 4)" in one and "flat" in one


def _table3(oracle=90.0, cf=65.0, tr=63.0, spread=2.0, teacher=50.0):
    """One dataset's box rows of Table III (model Y, teacher t) with AP, AP75 and spreads."""
    rows = [
        ("teacher zero-shot", "t", teacher, math.nan),
        ("Oracle", "Y", oracle, spread),
        ("TTA+WBF", "Y", 60.0, spread),
        ("TTA+WBF+CF", "Y", cf, spread),
        ("TTA+WBF+CF+TR", "Y", tr, spread),
    ]
    df = pd.DataFrame(rows, columns=["method", "model", "AP", "AP spread"])
    return df.assign(dataset="x", task="box", AP75=df["AP"], **{"AP75 spread": df["AP spread"]})


def test_effect_places_a_difference_against_the_seed_spread():
    assert narrative.effect(2.6, 3.0) == "+2.6 AP (inside the seed spread of 3.0)"
    assert narrative.effect(-5.8, 2.7) == "-5.8 AP (beyond the seed spread of 2.7)"
    assert "one seed" in narrative.effect(1.0, math.nan)
    assert narrative.effect(math.nan, 1.0) == "n/a"


def test_oracle_bound_says_when_the_oracle_is_no_upper_bound():
    assert "**an upper bound here**" in narrative.oracle_bound(_table3(), "t", "Y")[0]
    below = narrative.oracle_bound(_table3(oracle=45.0), "t", "Y")[0]
    assert "below TTA+WBF+CF (65.0)" in below and "not an upper bound" in below
    weak = _table3(oracle=55.0, cf=52.0, tr=52.0, teacher=62.0)
    assert "below the teacher `t` (62.0)" in narrative.oracle_bound(weak, "t", "Y")[0]
    assert narrative.oracle_bound(_table3().iloc[:0], "t", "Y") == []


def _cf(kept=45, iou_all=0.70, iou_kept=0.75):
    return pd.DataFrame(
        [
            {
                "dataset": "x",
                "train images": 100,
                "kept": kept,
                "box IoU all": iou_all,
                "box IoU kept": iou_kept,
            }
        ]
    )


def test_filter_verdicts_flip_with_the_students_change_and_the_spread():
    line = narrative.filter_verdicts(_table3(cf=56.0), _cf(), "Y")[0]
    assert "label box IoU 0.700 → 0.750 (+5.0 points), 55 % of the images dropped" in line
    assert "box AP75 -4.0 (beyond the seed spread of 2.0)" in line and "**CF hurts**" in line
    assert "**CF helps**" in narrative.filter_verdicts(_table3(cf=66.0), _cf(), "Y")[0]
    inside = narrative.filter_verdicts(_table3(cf=61.0), _cf(), "Y")[0]
    assert "inside the seed spread" in inside and "**CF: no effect beyond seed noise**" in inside
    assert narrative.filter_verdicts(_table3(), _cf().iloc[:0], "Y") == []
    with pytest.raises(KeyError, match="box IoU all"):
        narrative.filter_verdicts(_table3(), _cf().drop(columns="box IoU all"), "Y")


def test_distillation_verdicts_answer_each_question():
    text = narrative.distillation_verdicts(_table3(tr=70.0), "t", "Y", _cf())
    assert "Does the Oracle bound the students?" in text and "**an upper bound here**" in text
    assert "**CF helps**" in text and "**TR helps**" in text
    text = narrative.distillation_verdicts(_table3(tr=60.0), "t", "Y")
    assert "confidence filter" not in text and "**TR hurts**" in text
    assert "no trained rows" in narrative.distillation_verdicts(_table3().iloc[:0], "t", "Y")


def test_box_fit_says_too_tight_or_not():
    fit = pd.DataFrame(
        {"dataset": "x", "who": ["teacher", "student"], "area ratio": [0.7, 0.8], "IoU": 0.7}
    )
    text = narrative.box_fit(fit)
    assert "median area 70 % of the true box" in text and "antennas, booms" in text
    assert "**2 of 2 are too tight**: the visible failure" in text
    loose = narrative.box_fit(fit.assign(**{"area ratio": [1.3, 1.0]}))
    assert "too loose" in loose and "the right size" in loose
    assert "**0 of 2 are too tight**: tightness is not the main failure" in loose
    assert "no test image" in narrative.box_fit(fit.iloc[:0])
    with pytest.raises(KeyError, match="IoU"):
        narrative.box_fit(fit.drop(columns="IoU"))


def test_confidence_informative_calls_a_weak_rho_weak():
    text = narrative.confidence_informative({"a": 0.37, "b": 0.08, "c": -0.2})
    assert "`a` ρ = 0.37: informative" in text and "`b` ρ = 0.08: weak" in text
    assert "informative (ρ ≥ 0.3) on 1 of 3 datasets" in text and "`b`, `c`" in text
    assert "random" not in narrative.confidence_informative({"a": 0.5})
    assert "no dataset" in narrative.confidence_informative({})


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
    assert "SPEED" not in text  # no training rows: no size range


def test_dataset_stats_states_the_box_range_beside_real_renders():
    row = {"gap %": 5.0, "brightness %": 10.0, "area p50 %": 1.0, "truncated %": 3.0}
    sizes = {"box area p5 %": 0.3, "box area p50 %": 2.7, "box area p95 %": 27.5}
    stats = pd.DataFrame(
        [
            {"dataset": "a", "split": "test", **row},
            {"dataset": "a", "split": "train", **row, **sizes, "limb in frame %": 61.0},
            {"dataset": "b", "split": "train", **row, **sizes, "limb in frame %": float("nan")},
        ]
    )
    text = narrative.dataset_stats(stats)
    assert "`a` 0.3 / 2.7 / 27.5 %" in text and "`b` 0.3 / 2.7 / 27.5 %" in text
    assert "SPEED-style renders 0.4 / 1.1 / 9.0 %" in text
    assert "in frame in 61.0 % of `a` training images" in text and "of `b`" not in text


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


# ---- 05 debris tracking
def test_debris_splits_states_density_and_the_dense_split():
    splits = pd.DataFrame(
        {
            "split": ["train", "test_sparse", "test_dense"],
            "videos": [4, 2, 2],
            "frames": [40, 20, 20],
            "debris boxes": [60, 30, 90],
            "tracks": [8, 4, 10],
        }
    )
    text = narrative.debris_splits(splits)
    assert "`train`: 4 videos, 40 frames, 1.50 debris per frame, 2.0 tracks per video" in text
    assert "holds 5.0 tracks per video against 2.0 in the sparse one" in text
    assert "no split" in narrative.debris_splits(splits.iloc[:0])
    with pytest.raises(KeyError, match="'tracks'"):
        narrative.debris_splits(splits.drop(columns="tracks"))


def test_zscale_frame_states_the_range_and_clipping():
    stats = pd.DataFrame(
        [
            {
                "k": 2.5,
                "median": 1000.0,
                "std": 40.0,
                "z1": 900.0,
                "z2": 1100.0,
                "min": 950.0,
                "max": 60000.0,
                "below z1 %": 0.25,
                "above z2 %": 1.5,
                "max |diff| stored": 1,
            }
        ]
    )
    text = narrative.zscale_frame(stats)
    assert "spans 950–60000 counts" in text and "[z1, z2] = [900.0, 1100.0]" in text
    assert "0.25 % of the pixels are clipped to 0 and 1.50 % to 255" in text
    assert "by at most 1 grey level" in text
    with pytest.raises(KeyError, match="max \\|diff\\| stored"):
        narrative.zscale_frame(stats.drop(columns="max |diff| stored"))


def test_debris_motion_reports_speed_and_angle_across_the_wrap():
    track = pd.DataFrame(
        {"frame": [1, 2, 3], "v": [float("nan"), 4.0, 4.02], "theta": [None, 179.0, -179.0]}
    )
    text = narrative.debris_motion(track, (3.0, 7.0))
    assert "over 2 steps (frames 1–3)" in text and "v = 4.01 px per frame" in text
    assert "θ = 180.0°" in text and "spread 2.00°" in text and "inside" in text
    assert "differ by 0.02 px (the json rounds" in text
    assert "outside" in narrative.debris_motion(track.assign(v=[None, 9.0, 9.0]), (3.0, 7.0))
    assert "single frame" in narrative.debris_motion(track.iloc[:1], (3.0, 7.0))


def test_debris_labels_counts_per_true_debris_and_cf_share():
    counts = pd.DataFrame(
        {
            "split": ["train", "test_dense"],
            "ground truth": [100, 40],
            "teacher zero-shot": [80, 30],
            "teacher TTA+fusion": [120, 36],
            "kept by CF": [48, float("nan")],
        }
    )
    text = narrative.debris_labels(counts, 0.4321)
    assert "`train`: 80 boxes alone, 120 after TTA+fusion (1.20 per true debris)" in text
    assert "CF at θ = 0.432 keeps 48 (40.0 %)" in text
    assert "`test_dense`: 30 boxes alone, 36 after TTA+fusion (0.90 per true debris)" in text
    assert text.count("CF at") == 1
    with pytest.raises(KeyError, match="kept by CF"):
        narrative.debris_labels(counts.drop(columns="kept by CF"), 0.4)


def test_debris_train_sets_per_frame():
    sets = pd.DataFrame(
        {"training set": ["student", "Oracle"], "images": [30, 40], "boxes": [45, 80]}
    )
    text = narrative.debris_train_sets(sets)
    assert "`student`: 45 boxes on 30 frames (1.50 per frame)" in text
    assert "`Oracle`: 80 boxes on 40 frames (2.00 per frame)" in text
    assert "no training set" in narrative.debris_train_sets(sets.iloc[:0])


def _long_mot() -> pd.DataFrame:
    rows = [
        ("teacher", "ocsort", "sparse", 50.0, 60.0, 2, 40.0, 30.0, 55.0),
        ("Oracle", "ocsort", "sparse", 80.0, 85.0, 1, 70.0, 75.0, 65.0),
        ("teacher", "ocsort", "dense", 20.0, 30.0, 5, 25.0, 20.0, 31.0),
        ("Oracle", "ocsort", "dense", 60.0, 66.0, 3, 45.0, 50.0, 41.0),
    ]
    cols = ["detector", "tracker", "split", "MOTA", "IDF1", "IDS", "HOTA", "DetA", "AssA"]
    return pd.DataFrame(rows, columns=cols)


def test_debris_mot_rows_names_the_best_row_and_the_limit():
    text = narrative.debris_mot_rows(_long_mot())
    assert "DetA is below AssA on 2 of 4 rows" in text
    assert "`sparse`: best HOTA 70.0 by Oracle + ocsort (DetA 75.0, AssA 65.0; MOTA 80.0" in text
    assert "`dense`: best HOTA 45.0 by Oracle + ocsort" in text and "3 ID switches" in text
    assert "no tracking row" in narrative.debris_mot_rows(_long_mot().iloc[:0])


def test_mot_cross_check_counts_agreement_and_explains_by_ids():
    long = pd.DataFrame(
        {
            "MOTA": [50.0, 40.0],
            "mm_MOTA": [50.0, 50.0],
            "IDF1": [60.0, 70.0],
            "mm_IDF1": [60.0, 70.0],
            "IDS": [1, 3],
            "mm_IDS": [1, 2],
            "CLR_TP": [8, 8],
            "CLR_FN": [2, 2],
        }
    )
    text = narrative.mot_cross_check(long)
    # row 2: dMOTA = -10 = -100 * (3 - 2) / 10, explained by one more ID switch
    assert "same IDF1 on 2 of 2 rows and the same MOTA on 1 of 2" in text and ": yes." in text
    assert "no (1 rows are not)" in narrative.mot_cross_check(long.assign(mm_IDS=[1, 3]))
    with pytest.raises(KeyError, match="mm_IDS"):
        narrative.mot_cross_check(long.drop(columns="mm_IDS"))


def test_debris_table_best_rows_of_each_source():
    table = pd.DataFrame(
        {
            "source": ["ours (simulated)", "ours (simulated)", "paper (SDTD)", "paper (SDTD)"],
            "detector": ["student", "Oracle", "OC-SORT", "SDT-Net"],
            "tracker": ["ocsort", "bytetrack", "OC-SORT", "SDT-Net"],
            "sparse MOTA": [40.0, 70.0, 84.1, 87.7],
            "sparse HOTA": [35.0, 60.0, 83.7, 87.8],
        }
    )
    text = narrative.debris_table(table)
    assert "ours best Oracle + bytetrack (HOTA 60.0, MOTA 70.0)" in text
    assert "our Oracle best Oracle + bytetrack" in text
    assert "the paper's best SDT-Net + SDT-Net (HOTA 87.8, MOTA 87.7)" in text
    assert "`dense`" not in text
    assert "no HOTA column" in narrative.debris_table(table.drop(columns="sparse HOTA"))


def test_debris_tracks_counts_identities_and_matching_frames():
    gt = pd.DataFrame({"frame": [1, 1, 2, 2, 3], "id": [1, 2, 1, 2, 1]})
    tracked = pd.DataFrame({"frame": [2, 2, 3, 3], "id": [5, 6, 5, 7]})
    text = narrative.debris_tracks(gt, tracked, "v1", [1, 2, 3, 4])
    assert "the truth holds 2 debris tracks (5 boxes)" in text
    assert "reports 3 identities (4 boxes)" in text
    assert "matches the truth on 2 of 4 frames" in text  # frames 2 and 4
    with pytest.raises(KeyError, match="tracked"):
        narrative.debris_tracks(gt, tracked.drop(columns="id"), "v1")


def test_debris_mota_hota_best_worst_and_dense_drop():
    long = _long_mot()
    text = narrative.debris_mota_hota(long)
    assert "`sparse`: best Oracle (HOTA 70.0, MOTA 80.0), worst teacher (HOTA 40.0" in text
    # dense - sparse HOTA: teacher -15, Oracle -25 -> mean -20
    assert "HOTA changes by -20.0 points" in text
    assert "no detector" in narrative.debris_mota_hota(long.iloc[:0])


def test_stage_times_total_and_largest_share():
    text = narrative.stage_times(pd.Series({"simulate": 5.0, "train": 15.0}))
    assert "took 20.0 s" in text and "`train` (15.0 s, 75.0 %)" in text
    assert "no stage" in narrative.stage_times(pd.Series(dtype=float))


# ---- 06 spacecraft classification
def test_06_narratives_say_so_when_the_table_is_empty_or_lacks_a_column():
    empty = pd.DataFrame()
    for fn in (
        narrative.type_splits,
        narrative.loss_by_hand,
        narrative.center_grid_search,
        narrative.center_history,
        narrative.center_classification,
        narrative.center_per_class,
        narrative.center_data_curve,
        narrative.center_heatmaps,
    ):
        assert "lacks column(s)" in fn(empty), fn.__name__
    assert "lacks column(s) images" in narrative.type_splits(pd.DataFrame({"split": ["x"]}))
    assert "is empty" in narrative.type_splits(pd.DataFrame(columns=["split", "images"]))
    assert "is empty" in narrative.heatmap_by_hand(empty, 0.5)
    assert "is empty" in narrative.center_confusion(empty)
    assert "lacks column(s) predict" in narrative.decode_by_hand(
        pd.DataFrame({"by hand": [1.0]}), "a"
    )
    assert "no row of ours" in narrative.center_classification(
        pd.DataFrame(
            {"source": ["report"], "class accuracy %": [96.0], "center-cell accuracy": [0.78]}
        )
    )


def test_type_splits_counts_images_and_type_range():
    counts = pd.DataFrame({"split": ["train", "test"], "images": [12, 6], "a": [5, 2], "b": [7, 4]})
    text = narrative.type_splits(counts, domains=2)
    assert "2 types, balanced" in text and "differ by at most 2 (one image per domain)" in text
    even = counts.assign(a=[6, 3], b=[6, 3])
    assert "every type equally often" in narrative.type_splits(even)
    assert "`train`: 12 images, each type 5–7 times" in text
    assert "`test`: 6 images, each type 2–4 times" in text
    assert "not balanced" in narrative.type_splits(counts, domains=1)


def test_heatmap_by_hand_reads_peak_neighbour_and_support():
    t = [[0.0] * 4 for _ in range(4)]
    t[2][1], t[1][1], t[2][2] = 1.0, 0.135, 0.135
    text = narrative.heatmap_by_hand(pd.DataFrame(t), 0.5)
    assert "cell (row 2, col 1) holds 1.000" in text
    assert "exp(−1/2σ²) = 0.135 at σ = 0.50" in text  # exp(-2) at sigma 0.5
    assert "3 of 16 cells are non-zero (radius 3σ = 1.50 cells)" in text


def test_loss_by_hand_weights_and_sums_the_terms():
    terms = pd.DataFrame(
        {"weight": [3.0, 5.0, 1.0], "by hand": [0.5, 0.1, 1.5], "package": [0.5, 0.1, 1.5001]},
        index=["center", "box", "class"],
    )
    text = narrative.loss_by_hand(terms)
    assert "L = 3 · 0.500 (center) + 5 · 0.100 (box) + 1 · 1.500 (class) = 3.500" in text
    assert "largest weighted term is center" in text and "at most 1.0e-04" in text


def test_center_grid_search_picks_each_stage_like_grid_search():
    trials = pd.DataFrame(
        {
            "trial": [1, 2, 3],
            "stage": [1, 1, 2],
            "lr": [1e-4, 3e-4, 3e-4],
            "val_AP": [20.0, 20.0, 35.0],
            "val_cell_accuracy": [0.5, 0.75, 0.25],
        }
    )
    text = narrative.center_grid_search(trials)
    assert "stage 1 (2 trials): trial 2 (lr = 0.0003), val box AP 20.0, cell accuracy 0.75" in text
    assert "stage 2 (1 trials): trial 3" in text and "3 trials" in text


def test_center_history_first_and_last_epoch():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [9.0, 5.0, 2.5],
            "center": [1.0, 0.5, 0.25],
            "box": [0.2, 0.1, 0.05],
            "cls": [1.79, 1.5, 1.0],
        }
    )
    text = narrative.center_history(history, num_types=6)
    assert "from 9.000 (epoch 1) to 2.500 (epoch 3)" in text
    assert "center 1.000 → 0.250, box 0.200 → 0.050, class 1.790 → 1.000" in text
    assert "ln 6 = 1.792" in text
    one = narrative.center_history(history.iloc[:1])
    assert "after its only epoch the weighted loss is 9.000; per term center 1.000" in one
    assert "ln" not in one


def test_decode_by_hand_states_cell_box_and_agreement():
    index = ["row", "col", "score", "x1", "y1", "x2", "y2"]
    hand = [1, 2, 0.875, 10.0, 20.0, 30.0, 40.0]
    table = pd.DataFrame(
        {"by hand": hand, "predict": [*hand[:3], 10.0, 20.0, 30.0, 40.002]}, index=index
    )
    text = narrative.decode_by_hand(table, "relay")
    assert "(row 1, col 2) with center probability 0.875" in text
    assert "[10.0, 20.0, 30.0, 40.0]" in text and "`relay`" in text and "within 2.0e-03" in text
    table["predict"] = float("nan")
    assert "kept no detection" in narrative.decode_by_hand(table, "relay")


def test_center_classification_sets_both_rows_beside_the_report():
    row = {"box AP": 30.25, "box AP50": 70.75, "s / step": 1.25}
    summary = pd.DataFrame(
        [
            {
                "source": "ours: stride 32",
                "class accuracy %": 62.5,
                "center-cell accuracy": 0.4375,
                "box AP75": 2.0,
                **row,
            },
            {
                "source": "ours: stride 8",
                "class accuracy %": 70.0,
                "center-cell accuracy": 0.75,
                "box AP75": 7.0,
                **row,
            },
            {"source": "report (SPARK)", "class accuracy %": 96.0, "center-cell accuracy": 0.78},
        ]
    )
    text = narrative.center_classification(summary, num_types=6)
    assert "against the report's ≈ 96 % class accuracy (chance: 16.7 %) and 0.78" in text
    assert (
        "- stride 32: class accuracy **62.5 %**, center-cell accuracy **0.44**, box AP 30.2, "
        "AP75 2.0 (1.25 s per step)" in text
    )
    assert "- stride 8: class accuracy **70.0 %**, center-cell accuracy **0.75**" in text
    assert "the last row's box AP75 is 7.0 against 2.0: 3.5× the first row's" in text
    one = narrative.center_classification(summary.iloc[[0, 2]])
    assert "the first row's" not in one and "stride 32" in one
    zero = summary.assign(**{"box AP75": [0.0, 5.0, None]})
    assert "Only the last row has boxes at IoU 0.75" in narrative.center_classification(zero)
    none = summary.assign(**{"box AP75": [0.0, 0.0, None]})
    assert "Neither row" in narrative.center_classification(none)


def test_center_per_class_best_worst_and_absent():
    per_class = pd.DataFrame(
        {"type": ["a", "b", "c", "d"], "accuracy %": [50.0, 100.0, float("nan"), 50.0]}
    )
    text = narrative.center_per_class(per_class)
    assert "best `b` (100.0 %), worst `a`, `d` (50.0 %)" in text
    assert "No test image of `c`" in text
    two = per_class.rename(columns={"accuracy %": "stride 32 accuracy %"}).assign(
        **{"stride 8 accuracy %": [90.0, 80.0, float("nan"), 85.0]}
    )
    text = narrative.center_per_class(two)
    assert "- stride 32: best `b` (100.0 %), worst `a`, `d` (50.0 %)" in text
    assert "- stride 8: best `a` (90.0 %), worst `b` (80.0 %)" in text
    same = per_class.assign(**{"accuracy %": [50.0, 50.0, float("nan"), 50.0]})
    assert "every type 50.0 %" in narrative.center_per_class(same)


def test_center_data_curve_reads_the_ends_and_extrapolates():
    curve = pd.DataFrame(
        {
            "train images": [240, 2400],
            "epochs": [20, 2],
            "steps": [300, 300],
            "class accuracy %": [60.0, 80.0],
            "center-cell accuracy": [0.4, 0.5],
        }
    )
    text = narrative.center_data_curve(curve, target=90.0)
    assert "at 300 steps, 240 images seen 20 times give 60.0 % class accuracy" in text
    assert "2400 distinct images seen 2 times give **80.0 %** and **0.50**" in text
    once = narrative.center_data_curve(curve.assign(epochs=[20, 1]))
    assert "seen once give" in once
    assert "(+20.0 points of class accuracy for the same cost)" in text
    # 20 points per decade: 90 % lies half a decade further, at 2400 * 10^0.5 images
    assert "20.0 points per tenfold images" in text and "about 7589 images" in text
    three = pd.concat([curve.iloc[:1], curve]).reset_index(drop=True)
    three.loc[0, ["train images", "class accuracy %"]] = [24, 10.0]  # a steep first decade
    assert "about 7589 images" in narrative.center_data_curve(three)  # the last two points
    assert "reaches the 70 % target" in narrative.center_data_curve(curve, target=70.0)
    flat = curve.assign(**{"class accuracy %": [80.0, 70.0]})
    text = narrative.center_data_curve(flat, target=90.0)
    assert "stays 20.0 points below 90 %." in text and "extrapolation" not in text
    assert "lacks column(s) epochs" in narrative.center_data_curve(curve.drop(columns="epochs"))


def test_center_confusion_diagonal_and_worst_pair():
    conf = pd.DataFrame([[3, 2, 0], [0, 4, 1], [0, 0, 5]], index=list("abc"), columns=list("abc"))
    text = narrative.center_confusion(conf)
    assert "12 of 15 test images lie on the diagonal" in text
    assert "`a` read as `b` (2 images)" in text
    conf.iloc[0, 1] = 1
    assert "(1 image)." in narrative.center_confusion(conf)
    assert "no type was mistaken" in narrative.center_confusion(pd.DataFrame([[1, 0], [0, 1]]))


def test_center_heatmaps_counts_right_types_and_cells():
    shown = pd.DataFrame(
        {
            "image_id": [1, 2],
            "true type": ["a", "b"],
            "predicted type": ["a", "a"],
            "score": [0.9, 0.25],
            "cell": [(1, 1), (0, 1)],
            "true cell": [(1, 1), (1, 1)],
        }
    )
    text = narrative.center_heatmaps(shown)
    assert "1 of 2 shown types and 1 of 2 center cells are right" in text
    assert "image 2: `b` predicted `a` (p = 0.250), cell (0, 1) vs true (1, 1)" in text


# ---- issue 24: claims the notebooks 01, 02, 05, 06 now show
def test_teachers_ran_says_whether_a_vlm_ran():
    text = narrative.teachers_ran(["classical_threshold"], {"grounded_sam2": "no weights"})
    assert "weight-free `classical_threshold`" in text and "No vision-language model ran" in text
    assert "not run (no weights here): `grounded_sam2`" in text
    text = narrative.teachers_ran(["classical_threshold", "grounded_sam2"])
    assert "vision-language teacher(s) `grounded_sam2`" in text
    assert "No vision-language model ran" not in text
    assert "none, so our rows are empty" in narrative.teachers_ran([], {"owlv2_sam2": "x"})


def _paper(tango_mask_openseed=62.2):
    rows = [
        ("lightbox", "GSAM-2", "box", 65.8),
        ("lightbox", "OpenSEED", "box", 35.0),
        ("lightbox", "GSAM-2", "mask", 66.2),
        ("lightbox", "OpenSEED", "mask", 37.1),
        ("tango", "GSAM-2", "box", 58.2),
        ("tango", "OpenSEED", "box", 23.8),
        ("tango", "GSAM-2", "mask", 58.2),
        ("tango", "OpenSEED", "mask", tango_mask_openseed),
        ("spark", "GSAM-2", "box", 53.3),
    ]
    return pd.DataFrame(rows, columns=["dataset", "model", "task", "AP"])


def test_paper_best_names_the_dataset_where_box_and_mask_winners_differ():
    text = narrative.paper_best(_paper())
    assert "is not the best on masks on `tango`" in text
    assert "`tango`: boxes **GSAM-2** (AP 58.2); masks **OpenSEED** (AP 62.2), against " in text
    assert "`spark`: boxes **GSAM-2** (AP 53.3); no masks" in text
    # flips when OpenSEED's masks fall behind
    assert "the same model is best on boxes and on masks" in narrative.paper_best(_paper(50.0))
    assert "empty" in narrative.paper_best(_paper().iloc[:0])


def _earth_table() -> pd.DataFrame:
    rows = [
        ("thr", "lightbox", 10, 1, 10.0),
        ("thr", "earth", 20, 8, 40.0),
        ("thr", "sunlamp", 0, 0, math.nan),
        ("grab", "earth", 20, 2, 10.0),
    ]
    columns = ["teacher", "dataset", "images with Earth in frame", "confusions", "share %"]
    return pd.DataFrame(rows, columns=columns)


def test_earth_confusions_counts_the_teacher_and_names_where_it_fails_most():
    text = narrative.earth_confusions(_earth_table(), "thr", shown=6)
    assert "`thr` boxes the Earth instead of the spacecraft on 9 of 30" in text
    assert "(30.0 %), most often on `earth` (40.0 %)" in text
    assert "other teachers: `grab` 2 of 20" in text and "the figure shows 6" in text
    none = _earth_table().assign(confusions=0, **{"share %": 0.0})
    assert "on 0 of 30 test images with the Earth in frame (0.0 %) (other" in (
        narrative.earth_confusions(none, "thr")
    )
    assert "`owl` did not run here" in narrative.earth_confusions(_earth_table(), "owl")
    no_earth = _earth_table().assign(**{"images with Earth in frame": 0, "confusions": 0})
    assert "no test image has the Earth in frame" in narrative.earth_confusions(no_earth, "thr")
    assert "no test split records" in narrative.earth_confusions(_earth_table().iloc[:0], "thr")


def test_classical_confidence_names_the_smallest_factor():
    f = pd.DataFrame({"factor": [0.5, 0.9, 1.0, 0.6]}, index=["c", "u", "f", "n"])
    text = narrative.classical_confidence(f, math.sqrt(0.27))
    assert "s = √(0.500 · 0.900 · 1.000 · 0.600) = 0.520" in text
    assert "smallest factor is **c** (0.500)" in text
    f.loc["n", "factor"] = 0.1
    assert "smallest factor is **n** (0.100)" in narrative.classical_confidence(f, 0.2)
    assert "empty" in narrative.classical_confidence(f.iloc[:0], 0.0)


def test_wbf_rescale_lowers_only_where_the_views_disagree():
    cases = pd.DataFrame(
        {
            "case": ["agree", "disagree"],
            "IoU": [0.8, 0.01],
            "M": [2, 1],
            "T": [2, 2],
            "mean": [0.7, 0.8],
            "ensemble_boxes": [0.7, 0.4],
        }
    )
    text = narrative.wbf_rescale(cases, 0.55)
    assert "agree: IoU 0.800 > τ = 0.55" in text and "**not lowered**" in text
    assert "returns 0.800 · 1/2 = 0.400: **lowered**" in text
    assert "**lowered**" not in narrative.wbf_rescale(cases.iloc[:1], 0.55)
    assert "**not lowered**" not in narrative.wbf_rescale(cases.iloc[1:], 0.55)
    assert "empty" in narrative.wbf_rescale(cases.iloc[:0], 0.55)


def _ablation(soft=(60.0, 70.0), flip_ap=(50.5, 49.0)):
    rows = [
        ("x", "none", "none", 1, 50.0),
        ("x", "vflip", "wbf", 2, flip_ap[0]),
        ("x", "hflip+vflip", "wbf", 3, flip_ap[1]),
        ("x", "scale", "nms", 3, 60.0),
        ("x", "scale", "soft_nms", 3, soft[0]),
        ("x", "all", "nms", 4, 70.0),
        ("x", "all", "soft_nms", 4, soft[1]),
    ]
    return pd.DataFrame(rows, columns=["dataset", "augmentations", "fusion", "views", "AP75"])


def test_tta_views_names_the_best_cell():
    text = narrative.tta_views(_ablation())
    assert "single view 50.0; best set of 4 views 70.0 (all / nms), of 4 views 70.0" in text
    text = narrative.tta_views(_ablation(soft=(80.0, 70.0)))
    assert "best set of 3 views 80.0 (scale / soft_nms), of 4 views 70.0" in text


def test_nms_vs_soft_nms_counts_equal_cells():
    assert "the same AP75 in all 2 cells" in narrative.nms_vs_soft_nms(_ablation())
    assert "differ in 1 of 2 cells" in narrative.nms_vs_soft_nms(_ablation(soft=(61.0, 70.0)))
    only_wbf = _ablation()[lambda d: d["fusion"] != "soft_nms"]
    assert "does not compare" in narrative.nms_vs_soft_nms(only_wbf)
    assert "empty" in narrative.nms_vs_soft_nms(_ablation().iloc[:0])


def test_flip_equivariance_flips_with_the_shift_and_the_ap_changes():
    text = narrative.flip_equivariance(2.0, _ablation())
    assert "**not** exactly flip-equivariant" in text and "up to 2.0 px" in text
    assert "`x`: -1.0 to +0.5 points over 2 flip cells" in text
    same = narrative.flip_equivariance(0.0, _ablation(flip_ap=(50.0, 50.0)))
    assert "is flip-equivariant here" in same and "+0.0 to +0.0" in same
    assert "no flip-only set" in narrative.flip_equivariance(0.0, _ablation().iloc[3:])
    assert "empty" in narrative.flip_equivariance(0.0, _ablation().iloc[:0])


def _mot(hota=(30.0, 40.0, 35.0, 50.0)):
    return pd.DataFrame(
        {
            "detector": ["teacher", "student", "student", "Oracle"],
            "tracker": ["ocsort", "bytetrack", "ocsort", "bytetrack"],
            "split": ["dense"] * 4,
            "HOTA": list(hota),
        }
    )


def test_best_tracking_row_and_tracks_shown_rank_the_pair():
    best = narrative.best_tracking_row(_mot())
    assert (best["detector"], best["tracker"]) == ("student", "bytetrack")  # Oracle excluded
    assert narrative.best_tracking_row(_mot().iloc[3:]) is None
    text = narrative.tracks_shown(_mot(), "student", "bytetrack")
    assert "the **best** of the 3 annotation-free" in text and "range 30.0–40.0" in text
    assert "the **worst** of the 3" in narrative.tracks_shown(_mot(), "teacher", "ocsort")
    assert "number 2 of the 3" in narrative.tracks_shown(_mot(), "student", "ocsort")
    tied = narrative.tracks_shown(_mot((0.0, 0.0, 0.0, 1.0)), "teacher", "ocsort")
    assert "which all score the same" in tied
    assert "no dense HOTA" in narrative.tracks_shown(_mot().iloc[:0], "student", "ocsort")


def test_debris_tracks_names_the_pair_drawn():
    gt = pd.DataFrame({"frame": [1, 2], "id": [1, 1]})
    tracked = pd.DataFrame({"frame": [2], "id": [3]})
    text = narrative.debris_tracks(gt, tracked, "v", [1, 2], "student", "ByteTrack")
    assert "the student + ByteTrack reports 1 identities" in text
    assert "the student +CF + OC-SORT" in narrative.debris_tracks(gt, tracked, "v")


def test_center_setup_lists_what_lies_outside_the_report_grid():
    arch = {"backbone": "tf_efficientnet_lite0", "weights": "imagenet_lite0", "imgsz": 256}
    grid = {"lr": [0.0001, 0.0003], "pos_weight": [6, 8, 10], "sigma": [0.3, 0.5, 0.7]}
    text = narrative.center_setup(arch, {"lr": 0.001, "pos_weight": 25.0, "sigma": 0.5}, grid)
    assert "backbone `tf_efficientnet_lite0` from `imagenet_lite0` weights" in text
    assert "at S = 256 px (a grid of 8×8 cells)" in text
    assert "**Outside**" in text and "lr = 0.001 (grid: 0.0001, 0.0003)" in text
    assert "k (pos_weight) = 25 (grid: 6, 8, 10)" in text and "Inside: σ (sigma)." in text
    inside = narrative.center_setup(
        {**arch, "weights": None}, {"lr": 0.0003, "pos_weight": 8, "sigma": 0.5}, grid
    )
    assert "random initialisation" in inside and "**Outside**" not in inside
    assert "is one of the report's grid values" in inside
    assert "no backbone" in narrative.center_setup({}, {}, grid)
    assert "No hyper-parameter" in narrative.center_setup(arch, {}, grid)
    assert "FREEZE_AT" not in text
    frozen = narrative.center_setup({**arch, "frozen_stages": 2}, {}, grid)
    assert "stem and first 2 stage(s) keep the loaded weights" in frozen


def test_center_overfit_flips_with_the_gap():
    history = pd.DataFrame({"epoch": [1, 20], "cls": [2.4, 0.002]})
    text = narrative.center_overfit(history, 61.7)
    assert text.startswith("**Overfitting:**") and "= 99.8 %" in text and "61.7 %" in text
    assert "a gap of 38.1 points" in text
    fits = narrative.center_overfit(pd.DataFrame({"epoch": [5], "cls": [0.4]}), 65.0)
    assert fits.startswith("**No sign of overfitting:**") and "(+2.0)" in fits
    assert "empty" in narrative.center_overfit(history.iloc[:0], 61.7)
    assert "no test accuracy" in narrative.center_overfit(history, math.nan)
    # one epoch over many images: its mean loss began untrained and understates the fit
    once = narrative.center_overfit(pd.DataFrame({"epoch": [1], "cls": [1.006]}), 82.7)
    assert once.startswith("**No sign of overfitting:**") and "(-46.1 points)" in once
    assert "began untrained (the only epoch here)." in once and "agree within" not in once


# ---- issue 24: notebooks 03 and 04 end every "what to look at" with a verdict
PAPER_KEPT = [79.0, 90.2, 83.4, 94.2]  # the paper's kept shares (percent of 500 images)


def test_label_quality_verdict_flips_with_the_tta_change():
    q = pd.DataFrame(
        {"dataset": ["x", "x", "y", "y"], "labels": ["single", "tta"] * 2, "box_iou": 0.5}
    )
    assert "**TTA+fusion leaves the labels as they were**" in narrative.label_quality(q)
    better = q.assign(box_iou=[0.5, 0.6, 0.5, 0.55])
    assert "**TTA+fusion improves the labels on 2 of 2 datasets**" in (
        narrative.label_quality(better)
    )
    worse = q.assign(box_iou=[0.6, 0.5, 0.5, 0.5])
    assert "**TTA+fusion makes the labels worse on 1 of 2 datasets**" in (
        narrative.label_quality(worse)
    )
    mixed = q.assign(box_iou=[0.6, 0.5, 0.5, 0.6])
    assert "improves the labels on `y` but worsens them on `x`" in narrative.label_quality(mixed)
    assert "no training image" in narrative.label_quality(q.iloc[:0])


def test_filter_by_hand_places_the_kept_share_against_the_papers():
    text = narrative.filter_by_hand("x", "keep 0.85", 0.31, 85, 100, 0.1, 0.9, PAPER_KEPT)
    assert "θ = 0.310 (the `keep 0.85` rule) keeps 85 of 100 labels (85 %)" in text
    assert "**inside the paper's 79–94 %, the paper's kept share**" in text
    strict = narrative.filter_by_hand("x", "mean", 0.5, 54, 100, 0.1, 0.9, PAPER_KEPT)
    assert "**below the paper's 79–94 %**, a stricter filter" in strict
    assert "(25 points short of its lowest)" in strict
    loose = narrative.filter_by_hand("x", "0.0", 0.0, 100, 100, 0.1, 0.9, PAPER_KEPT)
    assert "**above the paper's 79–94 %**, a looser filter" in loose
    assert "no labels to filter" in narrative.filter_by_hand("x", "mean", 0.0, 0, 0, 0, 0)


def _cf_rules(keep_kept=85, mean_kept=54, iou_kept=0.8, iou_dropped=0.6):
    rows = [
        ("x", "keep 0.85", 0.3, keep_kept, iou_kept, iou_dropped),
        ("x", "mean", 0.5, mean_kept, 0.85, 0.7),
    ]
    cols = ["dataset", "rule", "theta", "kept", "box IoU kept", "box IoU dropped"]
    return pd.DataFrame(rows, columns=cols).assign(
        **{"train images": 100, "box IoU all": 0.75, "paper kept %": 86.7}
    )


def test_confidence_filter_shows_both_rules_against_the_papers_share():
    text = narrative.confidence_filter(_cf_rules(), PAPER_KEPT)
    assert "`keep 0.85`: θ = 0.300 keeps 85 of 100 images (85 %)" in text
    assert "`mean`: θ = 0.500 keeps 54 of 100 images (54 %)" in text
    assert "box IoU of the labels kept by `keep 0.85` 0.800 vs dropped 0.600" in text
    assert "**the filter keeps the better labels on 1 of 1 datasets**" in text
    assert "`keep 0.85` keeps 85 %: **inside the paper's 79–94 %" in text
    assert "`mean` keeps 54 %: **below the paper's 79–94 %**, a stricter" in text
    worse = narrative.confidence_filter(_cf_rules(iou_kept=0.5), PAPER_KEPT)
    assert "**the filter keeps the better labels on only 0 of 1 datasets**" in worse
    all_kept = _cf_rules(keep_kept=100).assign(**{"box IoU dropped": [math.nan, 0.7]})
    assert "**the filter drops nothing on any of the 1 datasets**" in (
        narrative.confidence_filter(all_kept)
    )
    assert "no dataset had labels" in narrative.confidence_filter(_cf_rules().iloc[:0])


def test_distillation_verdict_says_whether_the_students_beat_the_teacher():
    text = narrative.distillation(_table3(), "t", ["Y"])
    assert "**the best distilled student beats the teacher on all 1**" in text
    below = narrative.distillation(_table3(cf=45.0, tr=45.0, teacher=70.0), "t", ["Y"])
    assert "**no distilled student beats the teacher beyond the seed spread**" in below
    assert "(below it on `x`)" in below
    close = narrative.distillation(_table3(cf=51.0, tr=51.0, teacher=60.0), "t", ["Y"])
    assert "beats the teacher on all" not in close  # TTA+WBF's 60.0 vs 60.0: no change
    assert "beats the teacher beyond the seed spread** (inside the seed spread on `x`)" in close
    two = pd.concat([_table3(), _table3(cf=45.0, tr=45.0, teacher=70.0).assign(dataset="y")])
    text = narrative.distillation(two, "t", ["Y"])
    assert (
        "**the best distilled student beats the teacher on 1 of 2** (`x`) (below it on `y`)" in text
    )
    assert "no trained row" in narrative.distillation(_table3().iloc[:1], "t", ["Y"])


def test_convergence_verdict_shows_the_gains_and_one_checkpoint_cannot_tell():
    epochs = [4, 8, 12]
    curve = pd.concat(
        [
            pd.DataFrame({"epoch": epochs, "dataset": "a", "AP": [40.0, 50.0, 56.3]}),
            pd.DataFrame({"epoch": epochs, "dataset": "b", "AP": [40.0, 40.2, 40.5]}),
        ]
    )
    text = narrative.convergence(curve, {})
    assert "**still rising on `a` (+16.3/+0.5 AP over the last checkpoints" in text
    text = narrative.convergence(curve.assign(AP=40.0), {})
    assert "**flat everywhere (+0.0/+0.0 AP over the last checkpoints" in text
    one = narrative.convergence(curve[curve["epoch"] == 4], {})
    assert "**one checkpoint only: no curve, so convergence cannot be judged**" in one
    assert "converged at this budget" not in one
    twice = pd.concat([curve[curve["epoch"] == 4]] * 2)  # the last and a periodic checkpoint
    assert "cannot be judged" in narrative.convergence(twice, {})


def test_relabel_one_image_says_kept_and_closer_or_not():
    args = (0.9, {"x": 0.5}, True, 80, 100)
    text = narrative.relabel_one_image(*args, 0.70, 0.90)
    assert "scores 0.900 against round 1's θ of x 0.500; it is kept" in text
    assert "**closer to the truth than the teacher's label** (box IoU 0.900 vs 0.700)" in text
    assert "kept: round 1 learns from it" in text
    worse = narrative.relabel_one_image(0.3, {"x": 0.5}, False, 80, 100, 0.9, 0.7)
    assert "**further from the truth" in worse and "dropped: round 1 never sees it" in worse
    assert "**as close to the truth" in narrative.relabel_one_image(*args, 0.8, 0.805)
    assert "**the student gave this image no label**" in (
        narrative.relabel_one_image(math.nan, {"x": 0.5}, False, 80, 100)
    )


def _rounds(ap1=(44.0, 46.0), iou=(0.7, 0.8), kept=(85, 70)):
    rows = []
    for seed, (a0, a1) in enumerate(zip((40.0, 42.0), ap1, strict=True)):
        for rnd, ap in ((0, a0), (1, a1)):
            rows.append(
                {
                    "dataset": "x",
                    "student": "s",
                    "seed": seed,
                    "round": rnd,
                    "task": "box",
                    "AP75": ap,
                    "label_box_iou": iou[rnd],
                    "kept_images": kept[rnd],
                    "dataset_images": 100,
                }
            )
    return pd.DataFrame(rows)


def test_relabel_rounds_verdict_flips_against_the_seed_spread():
    text = narrative.relabel_rounds(_rounds())
    assert "training labels' box IoU 0.700 → 0.800 on 85 % → 70 % of the images" in text
    assert "round 1 vs round 0 +4.0 (beyond the seed spread of 2.0): **TR helps**" in text
    assert "does relabelling help? **yes**: TR helps on all 1" in text
    hurts = narrative.relabel_rounds(_rounds(ap1=(36.0, 38.0)))
    assert "**TR hurts**" in hurts and "**no**: TR hurts on `x` (of 1)" in hurts
    noise = narrative.relabel_rounds(_rounds(ap1=(41.0, 43.0)))
    assert "inside the seed spread of 2.0" in noise and "**no**: TR is inside the seed" in noise
    one = narrative.relabel_rounds(_rounds().query("round == 0"))
    assert "**one round only: nothing was relabelled" in one
    assert "no relabel round" in narrative.relabel_rounds(_rounds().iloc[:0])


def test_oracle_bound_too_close_to_call_inside_the_seed_spread():
    line = narrative.oracle_bound(_table3(oracle=66.0, spread=2.0), "t", "Y")[0]
    assert "and TTA+WBF+CF (65.0) differ by +1.0 AP (inside the seed spread of 2.0)" in line
    assert "**too close to call: inside the seed spread**" in line
    line = narrative.oracle_bound(_table3(oracle=64.0, spread=0.5), "t", "Y")[0]
    assert "is below TTA+WBF+CF (65.0), -1.0 AP (beyond the seed spread of 0.5)" in line


def test_distillation_verdicts_give_one_answer_per_question():
    text = narrative.distillation_verdicts(_table3(tr=70.0), "t", "Y", _cf(), rounds=_rounds())
    assert "*Does the Oracle bound the students?* **yes**: the Oracle is an upper bound" in text
    assert "*Does the confidence filter help?* **yes**: CF helps on all 1" in text
    assert "It keeps 45 % of the images." in text
    assert "*Does train relabelling help?* **yes**" in text
    assert "label box IoU 0.700 → 0.800 (+10.0 points), images kept 85 % → 70 %" in text
    text = narrative.distillation_verdicts(_table3(oracle=45.0, cf=56.0, tr=50.0), "t", "Y", _cf())
    assert "*Does the Oracle bound the students?* **no**: the Oracle is below another row" in text
    assert "*Does the confidence filter help?* **no**: CF hurts on `x` (of 1)" in text
    assert "*Does train relabelling help?* **no**: TR hurts on `x`" in text


def test_filter_outcome_links_back_to_notebook_03():
    cf = _cf().assign(**{"paper kept %": 86.7})
    text = narrative.filter_outcome(_table3(cf=66.0), cf, "Y", "keep 0.85")
    assert text.startswith("**Notebook 03's outcome (Y, θ: `keep 0.85`):** does CF help? **yes**")
    assert "It keeps 45 % of the images (the paper's filter kept 87 %)." in text
    assert "55 % of the images dropped (the paper's filter: 13 %)" in text
    assert "**no**: CF hurts" in narrative.filter_outcome(_table3(cf=50.0), cf, "Y", "mean")
    assert "not measured" in narrative.filter_outcome(_table3(), cf.iloc[:0], "Y", "mean")


def test_label_iou_summary_judges_each_refinement_step():
    summary = pd.DataFrame(
        {"single": [0.70, 0.80], "TTA": [0.70, 0.80], "CF": [0.75, 0.85]}, index=["a", "b"]
    )
    text = narrative.label_iou_summary(summary)
    assert "**single → TTA leaves the labels as they were**" in text
    assert "**TTA → CF improves the labels on 2 of 2 datasets** (mean box IoU +0.050" in text
    worse = narrative.label_iou_summary(summary.assign(CF=[0.6, 0.7]))
    assert "**TTA → CF makes the labels worse on 2 of 2 datasets**" in worse
    assert "no label set" in narrative.label_iou_summary(summary.iloc[:0])


def test_theta_sweep_says_which_rule_keeps_the_papers_share():
    text = narrative.theta_sweep(_cf_rules(), PAPER_KEPT)
    assert "`x`: `keep 0.85` θ = 0.300, 85 % kept; `mean` θ = 0.500, 54 % kept" in text
    assert "`keep 0.85` keeps 85 %: **inside the paper's 79–94 %, the paper's kept share**" in text
    assert "`mean` keeps 54 %: **below the paper's 79–94 %**, a stricter" in text
    flipped = narrative.theta_sweep(_cf_rules(keep_kept=60, mean_kept=88), PAPER_KEPT)
    assert "`mean` keeps 88 %: **inside" in flipped and "`keep 0.85` keeps 60 %: **below" in flipped
    assert "no dataset had labels" in narrative.theta_sweep(_cf_rules().iloc[:0], PAPER_KEPT)
    with pytest.raises(KeyError, match="rule"):
        narrative.theta_sweep(_cf_rules().drop(columns="rule"), PAPER_KEPT)


def test_a_zero_difference_is_no_change_not_harm():
    assert narrative._verdict_word(0.0, math.nan) == ": no change"
    assert narrative._verdict_word(-1.0, math.nan) == " hurts"
    assert narrative._verdict_word(1.0, 2.0) == ": no effect beyond seed noise"


def test_debris_sdtnet_against_the_best_box_rows_and_its_ablation():
    rows = [  # (detector, tracker, split, HOTA, MOTA)
        ("student", "bytetrack", "dense", 30.0, 10.0),
        ("student", "ocsort", "dense", 32.0, 12.0),
        ("teacher zero-shot", "ocsort", "dense", 25.0, 5.0),
        ("Oracle", "bytetrack", "dense", 40.0, 20.0),
        ("SDT-Net", "SDT-Net offsets", "dense", 35.5, 15.0),
        ("SDT-Net Oracle", "SDT-Net offsets", "dense", 38.0, 18.0),
        ("SDT-Net Oracle (a) centre", "SDT-Net offsets", "dense", 20.0, 2.0),
        ("SDT-Net Oracle (b) endpoints", "SDT-Net offsets", "dense", 36.0, 16.0),
    ]
    long = pd.DataFrame(rows, columns=["detector", "tracker", "split", "HOTA", "MOTA"])
    text = narrative.debris_sdtnet(long)
    assert "SDT-Net has HOTA 35.5 (MOTA 15.0) against 32.0 (MOTA 12.0)" in text
    assert "(student + ocsort): +3.5 HOTA" in text
    assert "the SDT-Net Oracle 38.0 against the YOLO Oracle's 40.0 (+ bytetrack): -2.0" in text
    assert "(a) centre 20.0, (b) endpoints 36.0, (d) full 38.0" in text
    assert "no SDT-Net row" in narrative.debris_sdtnet(long.iloc[:0])


def test_debris_targets_say_which_are_met_and_where_a_miss_is_lost():
    rows = [  # (detector, tracker, split, HOTA, DetA, AssA)
        ("student", "ocsort", "dense", 40.0, 35.0, 46.0),
        ("teacher zero-shot", "bytetrack", "dense", 48.0, 44.0, 52.0),  # not the rival
        ("Oracle", "ocsort", "dense", 50.0, 45.0, 56.0),
        ("SDT-Net", "SDT-Net offsets", "dense", 45.0, 38.0, 53.0),
        ("SDT-Net Oracle", "SDT-Net offsets", "dense", 52.0, 47.0, 58.0),
        ("student", "bytetrack", "sparse", 70.0, 65.0, 75.0),
        ("SDT-Net", "SDT-Net offsets", "sparse", 80.0, 75.0, 85.0),
    ]
    long = pd.DataFrame(rows, columns=["detector", "tracker", "split", "HOTA", "DetA", "AssA"])
    diag = pd.DataFrame(
        [("SDT-Net", "dense", 0.79, 0.77, 0.70, 0.46)],
        columns=["network", "split", "left peak recall", "right peak recall"]
        + ["detection precision", "detection recall"],
    )
    text = narrative.debris_targets(long, diag)
    assert "SDT-Net, dense: HOTA 45.0 against 40.0 (student + ocsort), +5.0" in text
    assert "target +10.0: **missed by 5.0**" in text
    assert "SDT-Net Oracle, dense: HOTA 52.0 against 50.0 (Oracle + ocsort), +2.0" in text
    assert text.count("**met**") == 2 and "sparse: HOTA 80.0 against 70.0" in text
    assert "SDT-Net on `dense`: DetA 38.0 and AssA 53.0 against 35.0 and 46.0" in text
    assert "finds 79% of the left endpoints and 77% of the right ones, yet 46%" in text
    # the teacher is reported beside the targets, never as the target's rival
    assert (
        "`dense`: HOTA 45.0 against 48.0 (teacher zero-shot + bytetrack), -3.0: not above" in text
    )
    assert "`sparse`" not in text.split("Not a target")[1]  # no teacher row on sparse
    # an Oracle level with the YOLO one has not beaten it; no diagnosis row: no recall sentence
    level = long.assign(HOTA=long["HOTA"].where(long["detector"] != "SDT-Net Oracle", 50.0))
    text = narrative.debris_targets(level, diag.iloc[:0])
    assert "target more: **missed by 0.0**" in text and "left endpoints" not in text
    assert "no SDT-Net row" in narrative.debris_targets(long.iloc[:0], diag)
