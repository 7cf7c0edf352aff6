"""Params loading, seeding and offline set-up."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from afss_utils import config
from afss_utils.config import (
    PARAMS_DIR,
    ParamsError,
    load_params,
    merge_params,
    named_grid,
    read_yaml,
    seed_everything,
)

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE", "YOLO_CONFIG_DIR")


def _overlay(tmp_path: Path, text: str, name: str = "overlay.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_loads_and_is_a_mapping():
    params = load_params()
    assert params == read_yaml(config.DEFAULT_PARAMS)
    assert load_params(config.DEFAULT_PARAMS) == params
    for key in ("seed", "datasets", "fusion", "yolo"):
        assert key in params


def test_overlay_merges_nested_keys(tmp_path):
    base = load_params()
    path = _overlay(tmp_path, "seed: 7\nfusion:\n  iou_thr: 0.7\nyolo: {epochs: 2}\n")
    params = load_params(path)
    assert params["seed"] == 7
    assert params["fusion"]["iou_thr"] == 0.7
    assert params["fusion"]["method"] == base["fusion"]["method"]  # siblings kept
    assert params["yolo"]["epochs"] == 2 and params["yolo"]["imgsz"] == base["yolo"]["imgsz"]
    assert load_params()["seed"] == base["seed"]  # the default is not mutated


def test_lists_are_replaced_not_merged(tmp_path):
    path = _overlay(tmp_path, "datasets:\n  - {name: x, layout: synthetic, domain: earth}\n")
    assert load_params(path)["datasets"] == [
        {"name": "x", "layout": "synthetic", "domain": "earth"}
    ]


def test_unknown_key_names_key_and_file(tmp_path):
    path = _overlay(tmp_path, "sed: 1\n", "typo.yaml")
    with pytest.raises(ParamsError, match=r"unknown params key 'sed' in .*typo\.yaml"):
        load_params(path)
    nested = _overlay(tmp_path, "fusion:\n  iou_treshold: 0.5\n", "nested.yaml")
    with pytest.raises(ParamsError, match=r"'fusion\.iou_treshold' in .*nested\.yaml"):
        load_params(nested)
    deeper = _overlay(tmp_path, "debris:\n  sim: {sizes: 1}\n", "deep.yaml")
    with pytest.raises(ParamsError, match=r"'debris\.sim\.sizes'"):
        load_params(deeper)


def test_overlays_stack_left_to_right_and_each_is_checked(tmp_path):
    first = _overlay(tmp_path, "seed: 7\nyolo: {epochs: 2, imgsz: 96}\n", "first.yaml")
    second = _overlay(tmp_path, "yolo: {epochs: 3}\n", "second.yaml")
    params = load_params([first, second])
    assert params["seed"] == 7  # kept from the first
    assert params["yolo"]["epochs"] == 3 and params["yolo"]["imgsz"] == 96  # later wins per key
    assert load_params([second, first])["yolo"]["epochs"] == 2
    assert load_params([config.DEFAULT_PARAMS, first]) == load_params(first)
    assert load_params([]) == load_params() == load_params(config.DEFAULT_PARAMS)
    typo = _overlay(tmp_path, "yolo: {epoch: 3}\n", "typo.yaml")
    with pytest.raises(ParamsError, match=r"'yolo\.epoch' in .*typo\.yaml"):
        load_params([first, typo])


def test_paper_smoke_is_the_paper_at_smoke_sizes():
    paper = load_params(PARAMS_DIR / "paper.yaml")
    smoke = load_params([PARAMS_DIR / "paper.yaml", PARAMS_DIR / "paper_smoke.yaml"])
    # what makes it the paper's run is kept ...
    for key in (
        "datasets",
        "zero_shot_teachers",
        "teacher",
        "confidence_threshold",
        "budget",
        "students",
        "pool_training",
        "seeds",
    ):
        assert smoke[key] == paper[key], key
    assert smoke["fusion"] == paper["fusion"] and smoke["fusion"]["mask_fusion"] == "reprompt"
    assert smoke["yolo"]["model"] == paper["yolo"]["model"]
    assert smoke["efficientdet"]["weights"] == paper["efficientdet"]["weights"]
    teachers = named_grid("teacher_options", smoke["teacher_options"])
    for name, opts in named_grid("teacher_options", paper["teacher_options"]).items():
        assert {k: v for k, v in teachers[name].items() if "threshold" not in k} == {
            k: v for k, v in opts.items() if "threshold" not in k
        }
    # ... and what makes it small and CPU-only is not
    assert smoke["device"] == "cpu" and smoke["cluster"]["gpus_per_training"] == 0
    assert smoke["yolo"]["epochs"] == smoke["efficientdet"]["epochs"] == 1


def test_grids_are_read_by_name(tmp_path):
    params = load_params()
    assert params["tta_grid"] == "paper" and params["fusion_grid"] == "paper"
    grid = named_grid("tta_grid", "paper")
    assert [row["name"] for row in grid][:3] == ["none", "hflip", "vflip"] and len(grid) == 8
    assert named_grid("fusion_grid", "paper") == ["wbf", "nms", "soft_nms"]
    opts = named_grid("teacher_options", load_params(PARAMS_DIR / "paper.yaml")["teacher_options"])
    assert opts["grounded_sam2"]["segmenter"] == "facebook/sam2.1-hiera-large"
    assert opts["grounded_sam2"]["box_threshold"] == 0.35  # the default's, as the old overlay kept
    typo = _overlay(tmp_path, "tta_grid: papr\n", "typo_grid.yaml")
    with pytest.raises(ParamsError, match=r"tta_grid 'papr' is not defined in .*grids\.yaml"):
        load_params(typo)
    for name in ("default", "quick", "smoke", "paper"):  # every shipped params file resolves
        load_params(PARAMS_DIR / f"{name}.yaml")


def test_extra_overrides(tmp_path):
    assert load_params(extra={"seed": 3})["seed"] == 3
    with pytest.raises(ParamsError, match="'bogus' in command-line overrides"):
        load_params(extra={"bogus": 1})


def test_invalid_yaml_names_file(tmp_path):
    bad = _overlay(tmp_path, "seed: [1, 2\n", "broken.yaml")
    with pytest.raises(ParamsError, match=r"broken\.yaml: not valid YAML"):
        load_params(bad)
    not_map = _overlay(tmp_path, "- 1\n- 2\n", "list.yaml")
    with pytest.raises(ParamsError, match=r"list\.yaml: top level must be a mapping"):
        load_params(not_map)
    with pytest.raises(ParamsError, match=r"params file not found: .*absent\.yaml"):
        load_params(tmp_path / "absent.yaml")


def test_empty_overlay_is_the_default(tmp_path):
    assert load_params(_overlay(tmp_path, "")) == load_params()


def test_merge_params_empty():
    assert merge_params({}, {}) == {}
    assert merge_params({"a": {"b": 1}}, {}) == {"a": {"b": 1}}


def test_seed_everything_repeats():
    import torch

    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(123)
    first = draw()
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    assert draw() != first


def test_setup_offline_sets_env_and_font(tmp_path, monkeypatch):
    for var in (*OFFLINE_VARS, "AFSS_ALLOW_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AFSS_CACHE", str(tmp_path / "cache"))
    config.setup_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["YOLO_OFFLINE"] == "1"
    yolo_dir = Path(os.environ["YOLO_CONFIG_DIR"])
    assert yolo_dir == tmp_path / "cache" / "ultralytics"
    font = yolo_dir / "Arial.ttf"
    assert font.is_file() and font.stat().st_size > 10_000
    config.setup_offline()  # idempotent
    assert font.is_file()


def test_setup_offline_allows_download_on_request(tmp_path, monkeypatch):
    for var in OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AFSS_ALLOW_DOWNLOAD", "1")
    monkeypatch.setenv("AFSS_CACHE", str(tmp_path))
    config.setup_offline()
    assert "HF_HUB_OFFLINE" not in os.environ and "YOLO_OFFLINE" not in os.environ
    assert (Path(os.environ["YOLO_CONFIG_DIR"]) / "Arial.ttf").is_file()


def test_ultralytics_trains_and_predicts_on_every_cpu_core():
    import torch

    config.import_ultralytics()
    from ultralytics.utils.torch_utils import select_device  # what train and predict call

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        select_device("cpu", verbose=False)
        assert torch.get_num_threads() == config.cpu_cores()
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- types
@pytest.mark.parametrize(
    "overlay, key",
    [
        ({"yolo": {"epochs": "ten"}}, "yolo.epochs"),
        ({"yolo": 5}, "yolo"),
        ({"seed": "abc"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"tta": "vflip"}, "tta"),
        ({"top_k": True}, "top_k"),
    ],
)
def test_overlay_values_of_the_wrong_type_name_the_key(overlay, key):

    with pytest.raises(ParamsError, match=f"'{key}' in command-line overrides must be"):
        load_params(extra=overlay)


def test_overlay_values_of_the_right_type_pass_and_int_fills_a_float():

    base = load_params()
    floats = [k for k, v in base["fusion"].items() if isinstance(v, float)]
    p = load_params(extra={"seed": 3, "fusion": {floats[0]: 1}, "yolo": {}})
    assert p["seed"] == 3 and p["fusion"][floats[0]] == 1


@pytest.mark.parametrize("key", ["confidence_threshold", "debris.confidence_threshold"])
def test_confidence_threshold_takes_a_number_or_a_rule_and_names_a_bad_one(key):
    def overlay(value):
        *outer, last = key.split(".")
        return {outer[0]: {last: value}} if outer else {last: value}

    def get(p):
        return p["debris"]["confidence_threshold"] if "." in key else p["confidence_threshold"]

    for value in (0.6, 1, "mean", "keep 0.85"):  # the forms eq. 6's theta takes
        assert get(load_params(extra=overlay(value))) == value
    for bad in ("median", "keep 2", 1.5, [0.5]):
        with pytest.raises(ParamsError, match=f"'{key}' in command-line overrides: confidence"):
            load_params(extra=overlay(bad))


def test_with_defaults_fills_a_partial_mapping_from_the_default():
    from afss_utils.config import with_defaults

    default = load_params()
    assert with_defaults("yolo", {}) == default["yolo"] == with_defaults("yolo")
    assert with_defaults("yolo", {"steps": 3}) == {**default["yolo"], "steps": 3}
    sim = with_defaults("debris", {"sim": {"frames": 2}})["sim"]
    assert sim == {**default["debris"]["sim"], "frames": 2}  # nested keys merge
    with pytest.raises(ParamsError, match=r"unknown params key 'yolo\.step'"):
        with_defaults("yolo", {"step": 3})
    with pytest.raises(ParamsError, match="'seed' is not a mapping"):
        with_defaults("seed", {})


def test_seed_everything_rejects_a_non_integer_seed():

    with pytest.raises(ParamsError, match="'seed' must be an integer, got 'abc'"):
        seed_everything("abc")


def test_quiet_ultralytics_keeps_warnings_and_errors():
    import logging

    config.quiet_ultralytics()
    try:
        from ultralytics.utils import LOGGER

        assert not LOGGER.isEnabledFor(logging.INFO)
        assert LOGGER.isEnabledFor(logging.WARNING) and LOGGER.isEnabledFor(logging.ERROR)
    finally:
        config.quiet_ultralytics(logging.INFO)
    assert LOGGER.isEnabledFor(logging.INFO)


def test_ultralytics_finds_fonts_offline(tmp_path):
    """ultralytics reads fonts from $YOLO_CONFIG_DIR/Ultralytics/; offline set-up puts them there."""
    import subprocess
    import sys

    code = (
        "import socket\n"
        "def boom(*a, **k): raise OSError('network blocked')\n"
        "socket.socket.connect = boom; socket.socket.connect_ex = boom\n"
        "socket.create_connection = boom\n"
        "import afss_utils\n"
        "from ultralytics.utils.checks import check_font\n"
        "print(check_font('Arial.ttf'))\n"
    )
    # sockets are blocked inside a child so ultralytics starts from a fresh config dir
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    path = out.stdout.strip().splitlines()[-1]
    assert path == str(tmp_path / "Ultralytics" / "Arial.ttf")


def test_paper_params_follow_the_authors_gpu_recipe():
    """params/paper.yaml (issue #21): SAM re-prompted with the fused box, labels scored by SAM's
    mask score, students from the official pretrained checkpoints, ultralytics' nominal batch
    and a checkpoint period that fits 300 epochs."""
    from afss_utils.config import load_params, named_grid

    p = load_params("params/paper.yaml")
    assert p["fusion"]["mask_fusion"] == "reprompt"
    options = named_grid("teacher_options", p["teacher_options"])
    assert options["grounded_sam2"]["score"] == options["owlv2_sam2"]["score"] == "mask"
    assert p["yolo"]["model"].endswith(".pt")
    assert p["yolo"]["nbs"] == 64
    assert p["yolo"]["epochs"] // p["yolo"]["save_period"] <= 12
    # the default study is untouched: from scratch, box scores, pixel vote
    d = load_params("params/default.yaml")
    assert d["fusion"]["mask_fusion"] == "vote" and d["yolo"]["model"].endswith(".yaml")
    assert "score" not in named_grid("teacher_options", d["teacher_options"])["grounded_sam2"]
