"""The papermill runner on tiny throwaway notebooks (the study's own notebooks are not run here)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from afss_utils import run
from afss_utils.cluster import THREAD_VARIABLES
from afss_utils.config import DEFAULT_PARAMS, cpu_cores, load_params

ALL_KEYS = list(load_params())
# The first notebook declares a few keys, the second all the others: together they cover the
# schema, as the study's notebooks must.
FIRST_KEYS = ["seed", "out_dir", "num_train", "image_size"]
SECOND_KEYS = [k for k in ALL_KEYS if k not in FIRST_KEYS]

# Appends what the notebook saw to {out_dir}/log.jsonl; `declared` is set by the test.
RECORD = """\
import json, os, pathlib
_seen = {{k: globals()[k] for k in {declared!r}}}
_log = pathlib.Path({log_dir!r}) / "log.jsonl"
_log.parent.mkdir(parents=True, exist_ok=True)
with open(_log, "a") as fh:
    fh.write(json.dumps({{"name": {name!r}, "seen": _seen,
                         "has_seed": "seed" in globals(),
                         "threads": [os.environ.get(k) for k in {threads_env!r}]}}) + "\\n")
"""


def make_notebook(path: Path, keys: list[str], body: str = "", tagged: bool = True) -> Path:
    """A notebook with a parameters cell assigning None to ``keys``, then ``body``."""
    params = new_code_cell("\n".join(f"{k} = None" for k in keys))
    if tagged:
        params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(f"# {path.stem}"), params, new_code_cell(body)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def recording_notebook(path: Path, keys: list[str], log_dir: Path, extra: str = "") -> Path:
    body = RECORD.format(
        declared=keys, log_dir=str(log_dir), name=path.stem, threads_env=THREAD_VARIABLES
    )
    body += extra
    return make_notebook(path, keys, body)


def read_log(log_dir: Path) -> list[dict]:
    path = log_dir / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two recording notebooks run once with an overlay; shared by the read-only tests."""
    root = tmp_path_factory.mktemp("study")
    nbs = root / "notebooks"
    nbs.mkdir()
    log_dir = root / "log"
    # Written in reverse order and with decoys, so the runner's ordering is what is tested.
    recording_notebook(nbs / "01_second.ipynb", SECOND_KEYS, log_dir)
    recording_notebook(nbs / "00_first.ipynb", FIRST_KEYS, log_dir)
    make_notebook(nbs / "scratch.ipynb", [], "raise RuntimeError('not a stage')")
    make_notebook(nbs / "7_unnumbered.ipynb", [], "raise RuntimeError('not a stage')")
    overlay = root / "overlay.yaml"
    overlay.write_text("seed: 7\nnum_train: 3\nyolo: {epochs: 2}\n")
    out = root / "out"
    manifest = run.run_study(overlay, out, progress=False, notebooks_dir=nbs)
    return {"manifest": manifest, "out": out, "nbs": nbs, "log": log_dir, "overlay": overlay}


def test_runs_stages_in_order_and_ignores_other_notebooks(study):
    assert [e["name"] for e in read_log(study["log"])[:2]] == ["00_first", "01_second"]
    executed = sorted(p.name for p in (study["out"] / "executed").iterdir())
    assert executed == ["00_first.ipynb", "01_second.ipynb"]
    nb = study["manifest"]["notebooks"]
    assert list(nb) == ["00_first", "01_second"]
    assert nb["00_first"]["finished"] <= nb["01_second"]["started"]


def test_injects_merged_params_but_only_declared_keys(study):
    first, second = read_log(study["log"])[:2]  # the --only test appends later
    defaults = load_params()
    assert first["seen"]["seed"] == 7 and first["seen"]["num_train"] == 3
    assert first["seen"]["image_size"] == defaults["image_size"]
    assert first["seen"]["out_dir"] == str(study["out"].resolve())
    # nested overlay merges key by key
    assert second["seen"]["yolo"] == {**defaults["yolo"], "epochs": 2}
    assert second["seen"]["datasets"] == defaults["datasets"]
    # keys the second notebook does not declare are not injected into it
    assert not second["has_seed"]
    injected = [
        c
        for c in nbformat.read(study["out"] / "executed" / "01_second.ipynb", 4).cells
        if "injected-parameters" in c.metadata.get("tags", [])
    ]
    assert len(injected) == 1
    assert "yolo" in injected[0].source and "num_train" not in injected[0].source


def test_manifest_records_the_run(study):
    m = json.loads((study["out"] / "manifest.json").read_text())
    assert m == json.loads(json.dumps(study["manifest"]))
    assert m["status"] == "ok" and m["finished"] and m["duration_s"] >= 0
    assert m["seed"] == 7 and m["params"]["seed"] == 7 and m["params"]["yolo"]["epochs"] == 2
    assert set(m["params"]) == set(ALL_KEYS)
    assert m["params_file"] == str(study["overlay"].resolve())
    assert set(run.LIBRARIES) | {"python"} <= set(m["versions"])
    assert m["versions"]["papermill"] and m["versions"]["numpy"]
    assert m["machine"]["cpu_count"] == os.cpu_count() and m["machine"]["memory_gb"] > 0
    assert isinstance(m["machine"]["gpus"], list)
    assert set(m["git"]) == {"sha", "dirty"}
    if m["git"]["sha"] is not None:
        assert len(m["git"]["sha"]) == 40 and isinstance(m["git"]["dirty"], bool)
    for name, entry in m["notebooks"].items():
        assert entry["status"] == "ok" and entry["duration_s"] >= 0
        assert entry["started"] <= entry["finished"]
        assert entry["executed"] == f"executed/{name}.ipynb"
    assert m["notebooks"]["00_first"]["parameters"] == sorted(FIRST_KEYS)


def test_only_runs_selected_and_keeps_other_manifest_entries(study, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(study["out"], out)
    before = json.loads((out / "manifest.json").read_text())["notebooks"]
    log_dir = study["log"]
    n_before = len(read_log(log_dir))
    m = run.run_study(study["overlay"], out, only=["1"], progress=False, notebooks_dir=study["nbs"])
    assert [e["name"] for e in read_log(log_dir)[n_before:]] == ["01_second"]
    assert m["only"] == ["01_second.ipynb"]
    assert m["notebooks"]["00_first"] == before["00_first"]  # kept as recorded
    assert m["notebooks"]["01_second"]["started"] >= before["01_second"]["started"]
    assert json.loads((out / "manifest.json").read_text())["notebooks"] == m["notebooks"]


def test_unknown_params_key_fails_before_anything_runs(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    missing = ["fusion_grid", "students"]
    recording_notebook(nbs / "00_a.ipynb", [k for k in ALL_KEYS if k not in missing], tmp_path)
    with pytest.raises(run.RunError, match="fusion_grid, students"):
        run.run_study(None, tmp_path / "out", progress=False, notebooks_dir=nbs)
    assert not (tmp_path / "out").exists() and not read_log(tmp_path)


def test_notebook_without_parameters_cell_is_named(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    make_notebook(nbs / "00_a.ipynb", ALL_KEYS)
    make_notebook(nbs / "01_untagged.ipynb", ["seed"], tagged=False)
    with pytest.raises(run.RunError, match="01_untagged.ipynb.*parameters"):
        run.run_study(None, tmp_path / "out", progress=False, notebooks_dir=nbs)
    assert not (tmp_path / "out").exists()


def test_empty_or_missing_notebook_folder(tmp_path):
    with pytest.raises(run.RunError, match="no NN_"):
        run.run_study(None, tmp_path / "out", progress=False, notebooks_dir=tmp_path)
    with pytest.raises(run.RunError, match="not found"):
        run.run_study(None, tmp_path / "out", notebooks_dir=tmp_path / "absent")


def test_only_unknown_number_lists_available(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    make_notebook(nbs / "00_a.ipynb", ALL_KEYS)
    with pytest.raises(run.RunError, match=r"--only 03.*have: 00"):
        run.run_study(None, tmp_path / "out", only=["03"], notebooks_dir=nbs)


def test_declared_parameters_reads_assignments_only(tmp_path):
    nb = new_notebook(
        cells=[new_code_cell("a = 1\nb: int = 2\n# c = 3\nprint(a)\na = 4\nd, e = 5, 6")]
    )
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, tmp_path / "00_x.ipynb")
    assert run.declared_parameters(tmp_path / "00_x.ipynb") == ["a", "b"]
    empty = new_notebook(cells=[new_code_cell("")])
    empty.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(empty, tmp_path / "01_y.ipynb")
    assert run.declared_parameters(tmp_path / "01_y.ipynb") == []


def test_cli_stacks_several_params_files_in_order(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    recording_notebook(nbs / "00_first.ipynb", FIRST_KEYS, tmp_path / "log")
    recording_notebook(nbs / "01_second.ipynb", SECOND_KEYS, tmp_path / "log")
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("seed: 7\nnum_train: 3\n")
    second.write_text("num_train: 5\n")
    out = tmp_path / "out"
    argv = ["--params", str(first), str(second), "--out", str(out), "--notebooks-dir", str(nbs)]
    assert run.main([*argv, "--no-progress"]) == 0
    seen, _ = read_log(tmp_path / "log")
    assert seen["seen"]["seed"] == 7 and seen["seen"]["num_train"] == 5
    m = json.loads((out / "manifest.json").read_text())
    assert m["params_file"] == [str(first.resolve()), str(second.resolve())]


def test_failing_notebook_stops_the_run_and_keeps_its_traceback(tmp_path, capsys):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    log_dir = tmp_path / "log"
    recording_notebook(nbs / "00_ok.ipynb", FIRST_KEYS, log_dir)
    boom = "raise ValueError('boom-4711')"
    recording_notebook(nbs / "01_fails.ipynb", SECOND_KEYS, log_dir, extra=boom)
    recording_notebook(nbs / "02_never.ipynb", [], log_dir)
    out = tmp_path / "out"
    argv = ["--params", str(DEFAULT_PARAMS), "--out", str(out), "--notebooks-dir", str(nbs)]
    code = run.main([*argv, "--no-progress"])
    assert code != 0
    assert "01_fails.ipynb" in capsys.readouterr().err
    assert [e["name"] for e in read_log(log_dir)] == ["00_ok", "01_fails"]
    assert not (out / "executed" / "02_never.ipynb").exists()
    executed = nbformat.read(out / "executed" / "01_fails.ipynb", 4)
    errors = [
        o
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert errors and errors[0]["ename"] == "ValueError" and "boom-4711" in errors[0]["evalue"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "failed" and m["failed"] == "01_fails" and m["finished"]
    assert m["params_file"] == "params/default.yaml"  # relative to the repo, no local prefix
    assert m["notebooks"]["00_ok"]["status"] == "ok"
    assert m["notebooks"]["01_fails"]["status"] == "failed"
    assert "boom-4711" in m["notebooks"]["01_fails"]["error"]
    assert "02_never" not in m["notebooks"]


def test_serial_engine_runs_notebooks_in_order_in_this_process_and_stops_on_failure(tmp_path):
    """cluster.engine: serial (a machine without Ray): same order, manifest and stop as Ray's."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    log_dir = tmp_path / "log"
    seen = str(tmp_path / "env.txt")
    env = f"import os; open({seen!r}, 'w').write(os.environ.get('TQDM_DISABLE', ''))"
    recording_notebook(nbs / "00_ok.ipynb", FIRST_KEYS, log_dir, extra="\n" + env)
    recording_notebook(nbs / "01_fails.ipynb", SECOND_KEYS, log_dir, extra="\n1 / 0")
    recording_notebook(nbs / "02_never.ipynb", [], log_dir)
    overlay = tmp_path / "serial.yaml"
    overlay.write_text("cluster: {engine: serial}\n")
    out = tmp_path / "out"
    with pytest.raises(run.RunError, match="01_fails.ipynb failed"):
        run.run_study(overlay, out, progress=False, notebooks_dir=nbs)
    assert [e["name"] for e in read_log(log_dir)] == ["00_ok", "01_fails"]
    assert (tmp_path / "env.txt").read_text() == "1"  # the kernels get the Ray engine's env
    assert "TQDM_DISABLE" not in os.environ or os.environ["TQDM_DISABLE"] != "1"
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "failed" and m["failed"] == "01_fails"
    assert m["params"]["cluster"]["engine"] == "serial"
    assert m["notebooks"]["00_ok"]["status"] == "ok" and "02_never" not in m["notebooks"]
    assert "ZeroDivisionError" in m["notebooks"]["01_fails"]["error"]


# ----------------------------------------------------------------------------- results/ guard
def test_results_folder_takes_only_default_params_from_a_clean_tree(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    recording_notebook(nbs / "00_a.ipynb", ALL_KEYS, tmp_path / "log")
    results = tmp_path / "results"
    smoke = run.DEFAULT_PARAMS.with_name("smoke.yaml")
    kw = dict(progress=False, notebooks_dir=nbs, results_dir=results)
    with pytest.raises(run.RunError, match="smoke.yaml elsewhere"):
        run.run_study(smoke, results, **kw)
    monkeypatch.setattr(run, "git_state", lambda repo=None: {"sha": "abc", "dirty": True})
    with pytest.raises(run.RunError, match="--allow-dirty"):
        run.run_study(None, results, **kw)
    assert not results.exists() and not read_log(tmp_path / "log")
    # other folders are free, and --allow-dirty is the explicit way in
    run.check_results_target(tmp_path / "out", smoke, results)
    # stacked overlays are named, and the default alone in a list is the default
    with pytest.raises(run.RunError, match="paper.yaml .*smoke.yaml elsewhere"):
        run.check_results_target(results, [smoke.with_name("paper.yaml"), smoke], results)
    run.check_results_target(tmp_path / "out", [run.DEFAULT_PARAMS, smoke], results)
    m = run.run_study([run.DEFAULT_PARAMS], results, allow_dirty=True, **kw)
    assert m["status"] == "ok" and m["git"]["dirty"] is True


# ----------------------------------------------------------------------------- Ctrl-C
SLEEPER = """\
import os, pathlib, time
pathlib.Path({flag!r}).write_text(str(os.getpid()))
time.sleep(120)
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_run_its_kernels_and_the_local_ray(tmp_path):
    """SIGINT to the runner: the manifest says interrupted, the running notebook's kernel and
    every process of the local Ray it started are gone, and Ray left nothing in /dev/shm."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    flag = tmp_path / "kernel.pid"
    make_notebook(nbs / "00_sleeps.ipynb", ALL_KEYS, SLEEPER.format(flag=str(flag)))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    cmd = [sys.executable, "-m", "afss_utils.run", "--out", str(out), "--notebooks-dir", str(nbs)]
    proc = subprocess.Popen([*cmd, "--no-progress"], env=env, cwd=run.REPO_ROOT)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the notebook never ran"
            time.sleep(0.5)
        kernel = psutil.Process(int(flag.read_text()))
        family = [p for p in psutil.Process(proc.pid).children(recursive=True)]
        assert kernel.pid in {p.pid for p in family}  # the kernel runs under this runner's Ray
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"left running: {[(p.pid, p.name()) for p in alive]}"
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "interrupted" and m["finished"]
    shm_after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    assert not {f for f in shm_after - shm_before if "plasma" in f or "ray" in f.lower()}


def test_upstream_is_the_previous_notebook_except_for_side_branches():
    numbers = ["00", "01", "02", "03", "04", "05", "06"]
    assert [run.upstream(n, numbers) for n in numbers] == [None, "00", "01", "02", "03", "00", "00"]
    # --only: a notebook outside the run is taken as done; a branch follows its own root
    assert run.upstream("03", ["03", "04"]) is None and run.upstream("04", ["03", "04"]) == "03"
    assert run.upstream("05", ["03", "05"]) is None
    assert run.upstream("01", []) is None


def test_kernel_threads_share_the_cores_between_notebooks_that_run_at_once():
    study = ["00", "01", "02", "03", "04", "05", "06"]
    # 00 runs before everything; the main line and the two branches share the cores with Ray
    assert [run.kernel_threads(n, study, 16) for n in study] == [16] + [4] * 6
    assert [run.kernel_threads(n, study, 2) for n in study] == [2] + [1] * 6
    # --only: one notebook, or a chain, has the machine to itself; two branches share it
    assert run.kernel_threads("03", ["03"], 2) == 2
    assert [run.kernel_threads(n, ["00", "05"], 8) for n in ("00", "05")] == [8, 8]
    assert [run.kernel_threads(n, ["05", "06"], 8) for n in ("05", "06")] == [2, 2]
    assert run.kernel_threads("05", ["05", "06"], 1) == 1


def test_each_kernel_runs_on_the_threads_it_was_given(tmp_path):
    nbs, log_dir = tmp_path / "notebooks", tmp_path / "log"
    nbs.mkdir()
    recording_notebook(nbs / "00_root.ipynb", ALL_KEYS, log_dir)
    recording_notebook(nbs / "01_main.ipynb", [], log_dir)
    recording_notebook(nbs / "05_branch.ipynb", [], log_dir)
    run.run_study(None, tmp_path / "out", progress=False, notebooks_dir=nbs)
    numbers = ["00", "01", "05"]
    seen = {rec["name"][:2]: rec["threads"] for rec in read_log(log_dir)}
    assert seen == {
        n: [str(run.kernel_threads(n, numbers, cpu_cores()))] * len(THREAD_VARIABLES)
        for n in numbers
    }
