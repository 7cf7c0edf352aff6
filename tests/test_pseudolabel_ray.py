"""Pseudo-labelling on Ray Data (``engine="ray"``): byte-identical to the serial engine, resume,
Ctrl-C, a killed actor, unreadable images, the CLI, and no Ray import on the serial path."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from afss_utils import pseudolabel as pl
from afss_utils.coco import mask_to_xyxy
from afss_utils.datasets import open_coco
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import cache_path, empty_path, main, pseudolabel
from afss_utils.teachers import build_teacher
from afss_utils.teachers.base import Prediction

REPO = Path(__file__).parent.parent
WBF = FusionConfig(method="wbf")


class SlowBright:
    """Bright pixels (> 128) are the object. Records its process: ``init-<pid>`` when built and
    ``<pid>`` when it labels (private attributes, so not part of the cache header)."""

    name = "slow_bright"

    def __init__(self, pid_dir: Path | None = None, delay: float = 0.0, device: str = "cpu"):
        self.top_k = 1
        self.device = device
        self._pid_dir = pid_dir
        self._delay = delay
        if pid_dir is not None:
            with open(pid_dir / f"init-{os.getpid()}", "a") as fh:
                fh.write("built\n")

    def predict(self, image, prompt="spacecraft"):
        if self._pid_dir is not None:
            (self._pid_dir / str(os.getpid())).touch()
        time.sleep(self._delay)
        mask = image.max(axis=2) > 128
        box = mask_to_xyxy(mask)
        if box is None:
            return Prediction.empty(*image.shape[:2])
        return Prediction(box[None], [float(image[mask].mean()) / 255], mask[None])


@pytest.fixture(scope="module")
def ray_here(ray_local):
    """The session's Ray, able to unpickle this module's teachers (workers cannot import it)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray_local
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def synth200(tmp_path_factory) -> Path:
    """200 rendered 96x96 spacecraft images (COCO json path)."""
    from afss_utils.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth") / "d", "lightbox", 200, 7, (96, 96), False)


@pytest.fixture(scope="module")
def serial200(synth200, tmp_path_factory) -> Path:
    """The serial engine's PRED.json of ``synth200`` (classical teacher, vflip, WBF)."""
    out = tmp_path_factory.mktemp("serial") / "pred.json"
    pseudolabel(classical(), open_coco(synth200), out, ["vflip"], WBF, progress=False)
    return out


def classical():
    return build_teacher("classical_threshold", top_k=1, device="cpu")


def appended_ids(monkeypatch, interrupt_after: int | None = None) -> list[int]:
    """Spy on the cache's appends: the list of image ids, filled as the run goes. With
    ``interrupt_after``, the append after that many raises KeyboardInterrupt (a Ctrl-C)."""
    ids: list[int] = []
    append = pl._Cache.append

    def spy(self, image_id, *args):
        if interrupt_after is not None and len(ids) == interrupt_after:
            raise KeyboardInterrupt
        ids.append(image_id)
        append(self, image_id, *args)

    monkeypatch.setattr(pl._Cache, "append", spy)
    return ids


def same_output(out: Path, ref: Path) -> bool:
    return (
        out.read_bytes() == ref.read_bytes()
        and empty_path(out).read_bytes() == empty_path(ref).read_bytes()
    )


# ----------------------------------------------------------------------------- with Ray
def test_ray_is_byte_identical_to_serial(ray_here, synth200, serial200, tmp_path, monkeypatch):
    ids = appended_ids(monkeypatch)
    out = tmp_path / "pred.json"
    ds = open_coco(synth200)
    summary = pseudolabel(
        classical(), ds, out, ["vflip"], WBF, progress=False, engine="ray", cluster={}
    )
    assert summary.n_images == 200 and summary.n_resumed == 0
    assert sorted(ids) == sorted(ds.image_ids)  # every image appended once, in arrival order
    assert same_output(out, serial200) and not cache_path(out).exists()


def test_ray_resumes_a_partial_cache_and_after_ctrl_c(
    ray_here, synth200, serial200, tmp_path, monkeypatch
):
    ds = open_coco(synth200)
    out = tmp_path / "pred.json"
    pseudolabel(classical(), ds, out, ["vflip"], WBF, limit=50, progress=False)  # serial, partial
    first50 = out.read_bytes()
    run = functools.partial(
        pseudolabel, classical(), ds, out, ["vflip"], WBF, progress=False, engine="ray"
    )
    ids = appended_ids(monkeypatch, interrupt_after=30)
    with pytest.raises(KeyboardInterrupt):
        run()
    assert len(ids) == 30 and out.read_bytes() == first50  # nothing published
    assert len(cache_path(out).read_bytes().splitlines()) == 1 + 50 + 30  # resumable as it is
    monkeypatch.undo()
    ids = appended_ids(monkeypatch)
    summary = run()  # the actors of the interrupted run are gone: this one gets the CPUs
    assert summary.n_resumed == 80 and len(ids) == 120 == len(set(ids))
    assert not set(ids) & set(ds.image_ids[:50])
    assert same_output(out, serial200)


def test_a_killed_actor_costs_a_retry_not_the_run(ray_here, synth200, tmp_path, monkeypatch):
    ds = open_coco(synth200)
    ds = ds.subset(ds.image_ids[:60])
    pids = tmp_path / "pids"
    pids.mkdir()
    out = tmp_path / "pred.json"
    killed: list[int] = []
    done = threading.Event()

    def kill_one_labeller():  # SIGKILL an actor that is labelling, once 10 images are in
        while not done.is_set():
            workers = [p for p in pids.iterdir() if p.name.isdigit()]
            lines = cache_path(out).read_bytes().count(b"\n") if cache_path(out).exists() else 0
            if workers and lines > 10:
                killed.append(int(workers[0].name))
                os.kill(killed[0], signal.SIGKILL)
                return
            time.sleep(0.01)

    ids = appended_ids(monkeypatch)
    killer = threading.Thread(target=kill_one_labeller, daemon=True)
    killer.start()
    try:
        summary = pseudolabel(
            SlowBright(),  # names the run; each actor builds its own (factory), once
            ds,
            out,
            ["vflip"],
            WBF,
            progress=False,
            engine="ray",
            cluster={"labelling_actors": 2},
            teacher_factory=functools.partial(SlowBright, pids, 0.04),
        )
    finally:
        done.set()
        killer.join()
    assert killed, "the run finished before an actor could be killed"
    assert summary.n_images == 60 and sorted(ids) == sorted(ds.image_ids)
    labellers = {p.name for p in pids.iterdir() if p.name.isdigit()}
    built = {p.name[len("init-") :] for p in pids.iterdir() if p.name.startswith("init-")}
    # the killed actor had labelled, and a restarted one (a new process) reran its batch
    assert str(killed[0]) in labellers and len(labellers) >= 3 and labellers <= built
    for pid in built:  # each actor built its teacher once, not per batch
        assert (pids / f"init-{pid}").read_text() == "built\n"
    ref = pseudolabel(SlowBright(), ds, tmp_path / "ref.json", ["vflip"], WBF, progress=False)
    assert same_output(out, ref.out_path)


def test_unreadable_image_names_the_file_and_cli_resumes(ray_here, make_shapes, tmp_path, capsys):
    ann = make_shapes(tmp_path / "data", n=8, size=48)
    bad = open_coco(ann).image_path(6)
    png = bad.read_bytes()
    bad.write_bytes(b"not a png")
    out = tmp_path / "pred.json"
    argv = ["--dataset", str(ann), "--out", str(out), "--teacher", "classical_threshold",
            "--tta", "vflip", "--no-progress"]  # fmt: skip
    assert main([*argv, "--engine", "ray", "--actors", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read image") and bad.name in err
    assert not out.exists() and cache_path(out).exists()  # the others are kept
    bad.write_bytes(png)
    assert main([*argv, "--engine", "ray", "--actors", "1"]) == 0
    assert " resumed" in capsys.readouterr().out
    ref = tmp_path / "ref.json"
    assert main([*argv[:3], str(ref), *argv[4:]]) == 0
    assert same_output(out, ref)


class CacheReporter(SlowBright):
    """Writes the ``HF_HOME`` its actor sees: where a VLM teacher would look for weights."""

    def predict(self, image, prompt="spacecraft"):
        (self._pid_dir / "hf_home").write_text(os.environ.get("HF_HOME", "<unset>"))
        return super().predict(image, prompt)


def test_actors_see_the_model_cache_the_caller_names(ray_here, make_shapes, tmp_path, monkeypatch):
    # the session's Ray started before HF_HOME was set: without forwarding, the actors would
    # look for the teacher's weights in the default cache
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    seen = tmp_path / "seen"
    seen.mkdir()
    ds = open_coco(make_shapes(tmp_path / "data", n=2, size=48))
    pseudolabel(CacheReporter(seen), ds, tmp_path / "p.json", engine="ray", progress=False)
    assert (seen / "hf_home").read_text() == str(tmp_path / "hf")


# ----------------------------------------------------------------------------- without Ray
def test_nothing_to_label_does_not_start_ray(make_shapes, tmp_path, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started with nothing to label")

    monkeypatch.setattr(pl, "_ray_rows", no_ray)
    ds = open_coco(make_shapes(tmp_path / "data", n=6))
    out = tmp_path / "pred.json"
    pseudolabel(SlowBright(), ds, out, limit=4, progress=False)  # a partial run keeps its cache
    ref = out.read_bytes()
    summary = pseudolabel(SlowBright(), ds, out, limit=4, progress=False, engine="ray")
    assert summary.n_resumed == 4 and out.read_bytes() == ref
    none = open_coco(make_shapes(tmp_path / "none", n=0))
    summary = pseudolabel(SlowBright(), none, tmp_path / "none.json", progress=False, engine="ray")
    assert summary.n_images == 0 and (tmp_path / "none.json").read_text() == "[]"


def test_a_row_delivered_twice_is_appended_once(make_shapes, tmp_path, monkeypatch):
    ds = open_coco(make_shapes(tmp_path / "data", n=4))
    calls = []

    def fake_rows(items, labeller, config, num_gpus):
        calls.append((labeller, config, num_gpus))
        for item in [*items, items[1], items[0]]:  # Ray reran a batch
            yield {**item, "sha1": pl.file_sha1(Path(item["path"])), "results": "[]", "error": ""}

    monkeypatch.setattr(pl, "_ray_rows", fake_rows)
    ids = appended_ids(monkeypatch)
    out = tmp_path / "pred.json"
    teacher = SlowBright(device="cuda:0")
    cluster = {"labelling_actors": 3}
    pseudolabel(teacher, ds, out, progress=False, engine="ray", cluster=cluster)
    assert ids == [1, 2, 3, 4]
    assert [e["image_id"] for e in json.loads(empty_path(out).read_text())] == [1, 2, 3, 4]
    (labeller, config, num_gpus), = calls  # fmt: skip
    assert labeller["teacher"] is teacher and labeller["teacher_factory"] is None
    assert config.labelling_actors == 3 and num_gpus == 1  # a CUDA teacher: a GPU per actor


def test_unknown_engine_is_refused_before_any_work(make_shapes, tmp_path):
    ds = open_coco(make_shapes(tmp_path / "data", n=2))
    with pytest.raises(ValueError, match="serial, ray"):
        pseudolabel(SlowBright(), ds, tmp_path / "p.json", progress=False, engine="dask")
    assert not cache_path(tmp_path / "p.json").exists()


def test_serial_engine_does_not_import_ray(tmp_path):
    script = textwrap.dedent(
        """
        import os
        import sys
        import numpy as np
        from PIL import Image
        from afss_utils import coco
        from afss_utils.pseudolabel import main
        root = sys.argv[1]
        os.makedirs(root + "/images")
        pixels = np.zeros((32, 32, 3), np.uint8)
        pixels[8:20, 8:24] = 200
        Image.fromarray(pixels).save(root + "/images/a.png")
        coco.save_json(coco.make_instances([coco.make_image(1, "a.png", 32, 32)], []),
                       root + "/annotations.json")
        rc = main(["--dataset", root + "/annotations.json", "--out", root + "/p.json",
                   "--teacher", "classical_threshold", "--tta", "vflip", "--no-progress"])
        assert rc == 0, rc
        assert "ray" not in sys.modules, "the serial engine imported ray"
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "d")], env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
