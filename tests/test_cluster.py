"""Ray for the study: params, pinned threads, trainings as tasks (alone or side by side, the same
bytes), a killed worker costs a retry, the first failure is named."""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from afss_utils import cluster
from afss_utils.cluster import ClusterConfig
from afss_utils.config import ParamsError, cpu_cores, load_params

# Ray workers cannot import this test module: its functions travel by value.
pytest.importorskip("ray").cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_config_from_default_params_and_errors_name_the_key():
    cfg = ClusterConfig.from_params(load_params()["cluster"])
    assert cfg == ClusterConfig("ray", None, 1, 0, 2)
    assert ClusterConfig.from_params(None) == ClusterConfig()
    with pytest.raises(ParamsError, match="cluster.cpus"):
        ClusterConfig.from_params({"cpus": 2})
    with pytest.raises(ParamsError, match="cluster.cpus_per_training"):
        ClusterConfig.from_params({"cpus_per_training": 0})
    with pytest.raises(ParamsError, match="cluster.labelling_actors"):
        ClusterConfig.from_params({"labelling_actors": 0})
    with pytest.raises(ParamsError, match="cluster.engine must be one of ray, serial"):
        ClusterConfig.from_params({"engine": "dask"})


def test_the_serial_engine_runs_in_order_in_this_process_without_ray():
    code = (
        "import functools, os, sys\n"
        "from afss_utils import cluster\n"
        "calls = {k: functools.partial(lambda k: (k, os.getpid(), os.environ['OMP_NUM_THREADS']), k)"
        " for k in 'ba'}\n"
        "out = cluster.run_all(calls, cluster.ClusterConfig(engine='serial'), progress=False)\n"
        "assert list(out) == ['b', 'a'] and {v[1] for v in out.values()} == {os.getpid()}\n"
        "assert {v[2] for v in out.values()} == {'1'}\n"
        "def boom(): raise ValueError('no data')\n"
        "try:\n"
        "    cluster.run_all({'x': boom}, cluster.ClusterConfig(engine='serial'), progress=False)\n"
        "except RuntimeError as e: print(e)\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["trainings: task 'x' failed: ValueError: no data", "False"]


def test_paper_params_ask_for_a_gpu_per_training():
    cfg = ClusterConfig.from_params(load_params("params/paper.yaml")["cluster"])
    assert cfg.gpus_per_training == 1 and cfg.cpus_per_training >= 1


def test_pinned_threads_sets_every_pool_and_restores_them():
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads(), os.environ.get("AFSS_THREADS")
    with cluster.pinned_threads(1):
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert cpu_cores() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert (torch.get_num_threads(), cv2.getNumThreads(), os.environ.get("AFSS_THREADS")) == before


def test_importing_the_package_does_not_import_ray():
    code = "import afss_utils.cluster, afss_utils.distill, afss_utils.run, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _where(tag):
    import torch

    return {
        "tag": tag,
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),
        "cores": cpu_cores(),
        "rank": os.environ.get("RANK"),
    }


def test_tasks_run_in_fresh_pinned_processes_in_submission_order(ray_local, monkeypatch):
    monkeypatch.setenv("RANK", "3")  # a DDP leftover must not reach the training
    out = cluster.run_all({k: functools.partial(_where, k) for k in "abc"}, progress=False)
    assert list(out) == ["a", "b", "c"]
    assert {r["threads"] for r in out.values()} == {1} and {r["cores"] for r in out.values()} == {1}
    assert len({r["pid"] for r in out.values()} | {os.getpid()}) == 4  # max_calls=1: one each
    assert {r["rank"] for r in out.values()} == {None}
    assert os.environ["RAY_ADDRESS"].startswith("127.0.0.1:")  # a local instance: loopback only


def _fails():
    raise ValueError("boom-1234")


def _env(keys):
    return {k: os.environ.get(k) for k in keys}


def test_tasks_see_the_model_cache_the_caller_names_after_ray_started(
    ray_local, monkeypatch, tmp_path
):
    # the local Ray (and its workers' environment) predates this variable: a teacher loaded in a
    # task would look in the wrong Hugging Face cache without the forwarding
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("TORCH_HOME", raising=False)
    out = cluster.run_all({"a": functools.partial(_env, ["HF_HOME", "TORCH_HOME"])}, progress=False)
    assert out["a"] == {"HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": None}
    assert cluster.worker_env(X="1") == {
        k: os.environ[k] for k in cluster.FORWARDED_ENV if k in os.environ
    } | {"X": "1"}


def test_first_failure_names_its_task(ray_local):
    calls = {"ok": functools.partial(_where, "ok"), "bad": _fails}
    with pytest.raises(RuntimeError, match=r"'bad' failed: ValueError: boom-1234"):
        cluster.run_all(calls, progress=False)
    assert cluster.run_all({}, progress=False) == {}


def _slow_once(folder: str) -> str:
    """Writes its pid, then sleeps long enough to be killed on its first attempt."""
    folder = Path(folder)
    attempt = len(list(folder.glob("pid_*")))
    (folder / f"pid_{attempt}").write_text(str(os.getpid()))
    if attempt == 0:
        time.sleep(60)
    return f"done on attempt {attempt}"


def test_a_killed_worker_costs_a_retry_not_the_run(ray_local, tmp_path):
    ref = cluster.submit(_slow_once, str(tmp_path))
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid_0").exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.2)
    os.kill(int((tmp_path / "pid_0").read_text()), signal.SIGKILL)
    assert cluster.gather({"t": ref}, progress=False) == {"t": "done on attempt 1"}


@pytest.mark.slow
def test_a_row_trained_alone_and_beside_another_gives_the_same_bytes(
    ray_local, make_shapes, tmp_path
):
    """The point of pinning: a training's numbers do not depend on what else runs."""
    from afss_utils.datasets import open_coco
    from afss_utils.distill import train_fresh
    from afss_utils.students import build_student

    data = open_coco(make_shapes(tmp_path / "shapes", n=8, size=64))
    yolo = {**load_params("params/smoke.yaml")["yolo"], "epochs": 2, "steps": 4}
    gt = [
        {k: a[k] for k in ("image_id", "bbox", "segmentation")} | {"score": 1.0}
        for a in data.instances["annotations"]
    ]

    def row(seed, folder):
        params = {"device": "cpu", "seed": seed, "top_k": 1, "yolo": yolo}
        make = functools.partial(build_student, "yolo11_seg", params)
        return functools.partial(train_fresh, make, gt, data, data, tmp_path / folder)

    alone = cluster.run_all({"a": row(0, "alone")}, progress=False)
    side = cluster.run_all({"a": row(0, "side"), "b": row(1, "other")}, progress=False)
    serial = ClusterConfig(engine="serial")  # Ray-less: in this process, on the same one thread
    in_process = cluster.run_all({"a": row(0, "serial")}, serial, progress=False)
    record, student = side["a"]
    assert record.threads == 1 and record.test_results and in_process["a"][0].threads == 1
    first = (tmp_path / "alone" / "test_predictions.json").read_bytes()
    assert first == (tmp_path / "side" / "test_predictions.json").read_bytes()
    assert first == (tmp_path / "serial" / "test_predictions.json").read_bytes()
    # the student travels back holding its weights, ready to predict in the driver
    assert student.model is not None and student.predict(data) == alone["a"][0].test_results


def test_kernels_seeded_alike_join_ray_with_their_own_subscriber_ids(monkeypatch):
    """Ray draws a driver's GCS subscriber ids from the global ``random``; two notebook kernels
    that seeded it alike must still draw different ones (else their long polls end each other's
    in a busy loop), and the notebook's own random stream must not move."""
    ray = pytest.importorskip("ray")
    drawn = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    # as ray._raylet's GcsErrorSubscriber / GcsLogSubscriber take their 28-byte ids
    monkeypatch.setattr(ray, "init", lambda **kw: drawn.append(random.getrandbits(8 * 28)))
    monkeypatch.setattr(
        ray, "get_runtime_context", lambda: SimpleNamespace(gcs_address="10.0.0.1:6379")
    )
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # restored after the test
    for _kernel in range(2):
        random.seed(0)  # seed_everything(seed) at the top of every notebook
        seeded = random.getstate()
        cluster.connect(ClusterConfig(address="10.0.0.1:6379"))
        assert random.getstate() == seeded
    assert len(drawn) == 2 and drawn[0] != drawn[1]


def test_temporary_env_sets_unsets_and_restores(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.delenv("AFSS_TEST_VAR", raising=False)
    with cluster.temporary_env(RANK=None, AFSS_TEST_VAR="x"):
        assert "RANK" not in os.environ and os.environ["AFSS_TEST_VAR"] == "x"
    assert os.environ["RANK"] == "3" and "AFSS_TEST_VAR" not in os.environ
    # the serial engine runs a training without the caller's DDP variables, then gives them back
    seen = cluster.run_all(
        {"a": lambda: os.environ.get("RANK")}, ClusterConfig(engine="serial"), progress=False
    )
    assert seen == {"a": None} and os.environ["RANK"] == "3"
