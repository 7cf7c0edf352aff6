"""The study runner: execute ``notebooks/NN_*.ipynb`` with papermill, each as a Ray task.

``python -m afss_utils.run --params params/default.yaml [--only 01,02] [--out results]``

The params decide the run (``config.load_params``: the default plus overlays, e.g.
``--params params/paper.yaml params/paper_smoke.yaml``). Each
notebook receives only the keys its ``parameters``-tagged cell declares; a key that no notebook
declares is an error before anything runs, so a typo never silently falls back to a default.
A notebook waits for the one numbered before it, except the side branches of :data:`BRANCHES`
(05 and 06 read only 00's datasets), which run beside the main line 01-04 on one Ray instance
(:mod:`afss_utils.cluster`) whose CPUs the notebooks' trainings share. Executed copies go to
``{out}/executed/``; the first failing notebook stops the run and cancels the others (its saved
copy shows the traceback). ``{out}/manifest.json`` records params, seed, git sha, library
versions, per-notebook timings and the machine, rewritten atomically after every notebook so a
partial run is still recorded.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat

from afss_utils import coco
from afss_utils.config import DEFAULT_PARAMS, REPO_ROOT, cpu_cores, load_params, overlay_files

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
NOTEBOOK_NAME = re.compile(r"^(\d{2})_[\w.-]+\.ipynb$")
KERNEL_NAME = "python3"
# A notebook waits for the one numbered before it, except these side branches: they read only
# the datasets of the one named here, so they run beside the main line (01-04) on Ray.
BRANCHES = {"05": "00", "06": "00"}
# The committed numbers: only params/default.yaml from a clean tree may write here, so every
# number in it names a commit and one params file.
RESULTS_DIR = REPO_ROOT / "results"
LIBRARIES = (
    "torch",
    "torchvision",
    "ultralytics",
    "transformers",
    "pycocotools",
    "ensemble-boxes",
    "effdet",
    "papermill",
    "numpy",
)


class RunError(RuntimeError):
    """The study cannot start (bad params, notebook without parameters) or a notebook failed."""


# ---------------------------------------------------------------------------- notebooks
def discover_notebooks(notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> list[Path]:
    """``NN_*.ipynb`` files of ``notebooks_dir`` in execution order (by name)."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise RunError(f"notebooks folder not found: {notebooks_dir}")
    return sorted(p for p in notebooks_dir.iterdir() if NOTEBOOK_NAME.match(p.name))


def declared_parameters(notebook: str | os.PathLike) -> list[str]:
    """Names assigned in the notebook's ``parameters``-tagged cell, in order of appearance.

    Raises RunError naming the notebook when it has no such cell, more than one, or the cell
    is not valid Python.
    """
    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise RunError(
            f"{notebook}: expected exactly one cell tagged 'parameters', found {len(cells)}"
        )
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise RunError(f"{notebook}: parameters cell is not valid Python: {exc}") from exc
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in names:
                names.append(target.id)
    return names


def _select(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    if not only:
        return notebooks
    wanted = [f"{int(n):02d}" if str(n).strip().isdigit() else str(n).strip() for n in only]
    by_number = {NOTEBOOK_NAME.match(p.name).group(1): p for p in notebooks}
    missing = [n for n in wanted if n not in by_number]
    if missing:
        raise RunError(
            f"--only {','.join(missing)}: no such notebook (have: {', '.join(sorted(by_number))})"
        )
    return [p for n, p in sorted(by_number.items()) if n in wanted]


# ---------------------------------------------------------------------------- manifest
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json_atomic(obj: Any, path: Path) -> None:
    # Indented: the committed manifest is read by people.
    coco.save_json(obj, path, indent=2)


def git_state(repo: str | os.PathLike = REPO_ROOT) -> dict[str, Any]:
    """``{"sha": str | None, "dirty": bool | None}`` of the checkout (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            # --no-optional-locks: a read-only query must not refresh (write) the index.
            out = subprocess.run(
                ["git", "--no-optional-locks", "-C", str(repo), *args],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def library_versions() -> dict[str, str | None]:
    """Installed versions of python and the study's libraries (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_summary() -> dict[str, Any]:
    """CPU count, memory, platform and GPUs (from ``nvidia-smi``, so torch is not imported)."""
    try:
        import psutil

        memory_gb: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gb = None
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            gpus = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gb": memory_gb,
        "gpus": gpus,
    }


def _display_path(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (keeps manifests free of local prefixes)."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


# ---------------------------------------------------------------------------- running
def _check_params(params: dict[str, Any], declared: dict[Path, list[str]]) -> None:
    known = {name for names in declared.values() for name in names}
    unknown = sorted(set(params) - known)
    if unknown:
        raise RunError(
            f"params keys not declared by any notebook's parameters cell: {', '.join(unknown)} "
            f"(notebooks: {', '.join(p.name for p in declared)})"
        )


def _notebook_error(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}".strip()


def check_results_target(
    out: Path,
    params_file: str | os.PathLike | Sequence[str | os.PathLike],
    results_dir: Path = RESULTS_DIR,
    allow_dirty: bool = False,
) -> None:
    """RunError when a run into the committed ``results_dir`` would mix in other params (smoke,
    quick, paper overlays) or come from a tree with uncommitted changes (unless
    ``allow_dirty``). Runs into any other folder are free."""
    if out.resolve() != Path(results_dir).resolve():
        return
    overlays = overlay_files(params_file)
    if overlays:
        raise RunError(
            f"{results_dir} holds the committed results of {DEFAULT_PARAMS.name} only; "
            f"write the run of {' '.join(map(str, overlays))} elsewhere "
            f"(e.g. --out out/{overlays[-1].stem})"
        )
    if git_state().get("dirty") and not allow_dirty:
        raise RunError(
            f"the tree has uncommitted changes, so {results_dir} would not name a commit; "
            "commit first or pass --allow-dirty"
        )


def run_study(
    params_file: str | os.PathLike | Sequence[str | os.PathLike] | None = DEFAULT_PARAMS,
    out_dir: str | os.PathLike | None = None,
    only: list[str] | None = None,
    progress: bool = True,
    notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
    cwd: str | os.PathLike = REPO_ROOT,
    kernel_name: str = KERNEL_NAME,
    allow_dirty: bool = False,
    results_dir: str | os.PathLike = RESULTS_DIR,
) -> dict[str, Any]:
    """Execute the study's notebooks and return the manifest (also written to disk).

    params_file:   an overlay on ``params/default.yaml`` (or the default itself; None = it), or
                   a list of overlays applied in order (:func:`afss_utils.config.load_params`)
    out_dir:       results folder (default: the params' ``out_dir``); injected as ``out_dir``
    only:          notebook numbers to run, e.g. ``["01", "02"]``; manifest entries of the other
                   notebooks already in ``{out_dir}/manifest.json`` are kept
    notebooks_dir: where the ``NN_*.ipynb`` files live
    cwd:           working directory of the kernels; relative paths in params resolve here

    allow_dirty:   let a tree with uncommitted changes write into ``results_dir``
    results_dir:   the committed results folder (:func:`check_results_target`)

    Raises RunError before anything runs for unknown params keys, a notebook without a
    parameters cell, or a run that may not write into ``results_dir``, and after saving the executed copy when a notebook fails.
    """
    import papermill  # noqa: F401  (fail before anything is written when it is missing)

    cwd = Path(cwd).resolve()
    params_file = overlay_files(params_file) or [DEFAULT_PARAMS]
    params = load_params(params_file)
    out = _resolve_out(out_dir, params, params_file, results_dir, allow_dirty)
    params["out_dir"] = _display_path(out, cwd)

    notebooks = discover_notebooks(notebooks_dir)
    if not notebooks:
        raise RunError(f"no NN_*.ipynb notebooks in {notebooks_dir}")
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    _check_params(params, declared)
    selected = _select(notebooks, only)

    manifest_path = out / "manifest.json"
    manifest = _start_manifest(manifest_path, params_file, params, selected, only)

    executed_dir = out / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    t_study = time.perf_counter()
    tasks = [
        _NotebookTask(
            nb, executed_dir / nb.name, {k: params[k] for k in declared[nb] if k in params}
        )
        for nb in selected
    ]
    _run_tasks(tasks, manifest, manifest_path, t_study, kernel_name, cwd, progress)
    _close(manifest, manifest_path, t_study, status="ok")
    return manifest


def upstream(number: str, numbers: list[str]) -> str | None:
    """The notebook that ``number`` waits for among ``numbers`` (those being run): the one
    numbered just before it, or for a side branch (:data:`BRANCHES`) the one it branches from;
    None when that one is not part of the run (its outputs are taken as already there)."""
    before = BRANCHES.get(number) or max((n for n in numbers if n < number), default=None)
    return before if before in numbers else None


def _ancestors(number: str, numbers: list[str]) -> set[str]:
    found, up = set(), upstream(number, numbers)
    while up is not None:
        found.add(up)
        up = upstream(up, numbers)
    return found


def kernel_threads(number: str, numbers: list[str], cores: int) -> int:
    """The threads notebook ``number``'s kernel may use when ``numbers`` run on ``cores``.

    A notebook that nothing else can run beside (every other one waits on it, or it on them)
    gets every core. The others share the machine with the side branches and with the Ray tasks
    that use every core Ray counts, so each kernel gets ``cores // (lines + 1)`` threads (at least
    one), ``lines`` being how many notebooks can run at once. On 2 cores a process running torch
    on 2 OpenMP threads beside a pinned one-thread training made that training's step 1.42x as
    long (each parallel region waits on a thread the OS has descheduled); a one-thread process
    beside it cost 2 % (benchmarks/bench_kernel_threads.py).
    """
    ancestors = {n: _ancestors(n, numbers) for n in numbers}
    if all(m == number or m in ancestors[number] or number in ancestors[m] for m in numbers):
        return cores
    leaves = sum(not any(n in ancestors[m] for m in numbers) for n in numbers)
    return max(1, cores // (leaves + 1))


@dataclass
class _NotebookTask:
    """One notebook of a study run: what to execute, and where its executed copy goes."""

    notebook: Path
    target: Path
    params: dict[str, Any]

    @property
    def number(self) -> str:
        return NOTEBOOK_NAME.match(self.notebook.name).group(1)


def _run_tasks(
    tasks: list[_NotebookTask],
    manifest: dict[str, Any],
    manifest_path: Path,
    t_study: float,
    kernel_name: str,
    cwd: Path,
    progress: bool,
) -> None:
    """Submit every notebook as a Ray task that waits on its upstream one (:func:`upstream`), so
    side branches run beside the main line; record each in the manifest as it ends. The first
    failure cancels the rest and raises RunError naming the executed copy; Ctrl-C cancels all."""
    from tqdm.auto import tqdm

    from afss_utils import cluster

    config = cluster.ClusterConfig.from_params(manifest["params"].get("cluster"))
    if config.engine == "serial":
        _run_serially(tasks, manifest, manifest_path, t_study, kernel_name, cwd, progress)
        return
    ray = cluster.connect(config)
    # The notebooks' kernels join this instance (their trainings share its CPUs); the notebook
    # tasks themselves ask for no CPU, since each only waits on its kernel, whose own work runs
    # on kernel_threads().
    # An executed notebook keeps a progress bar as a frozen "0%" line and Ray's C++ log lines
    # (e.g. Ray Data's note on its actors' constructor arguments) as stderr: neither tells a
    # reader anything; a failed task still raises in the notebook.
    env = cluster.worker_env(
        RAY_ADDRESS=os.environ["RAY_ADDRESS"], TQDM_DISABLE="1", RAY_BACKEND_LOG_LEVEL="fatal"
    )
    remote = ray.remote(max_calls=1, num_cpus=0, max_retries=0)(_execute_task)
    numbers = [t.number for t in tasks]
    by_number: dict[str, Any] = {}  # the last notebook of each number: what later ones wait on
    by_ref: dict[Any, _NotebookTask] = {}
    for task in tasks:
        up = upstream(task.number, numbers)
        threads = cluster.threads_env(kernel_threads(task.number, numbers, cpu_cores()))
        ref = remote.options(runtime_env={"env_vars": env | threads}).remote(
            str(task.notebook),
            str(task.target),
            task.params,
            kernel_name,
            str(cwd),
            by_number[up] if up else None,
        )
        by_number[task.number], by_ref[ref] = ref, task
    pending = list(by_ref)
    with tqdm(total=len(tasks), desc="study", unit="notebook", disable=not progress) as bar:
        try:
            while pending:
                (ref,), pending = ray.wait(pending, num_returns=1)
                task, result = by_ref[ref], ray.get(ref)
                bar.set_postfix_str(task.notebook.stem)
                bar.update(1)
                _record(task, result, manifest, manifest_path, t_study)
        except BaseException as exc:
            for ref in pending:
                ray.cancel(ref, force=True)
            if not isinstance(exc, RunError):
                _close(manifest, manifest_path, t_study, status="interrupted")
            raise


def _run_serially(
    tasks: list[_NotebookTask],
    manifest: dict[str, Any],
    manifest_path: Path,
    t_study: float,
    kernel_name: str,
    cwd: Path,
    progress: bool,
) -> None:
    """``cluster.engine: serial``: the notebooks one after another in this process, in order,
    with the same manifest entries and the same stop on the first failure as the Ray engine."""
    from tqdm.auto import tqdm

    from afss_utils import cluster

    # the kernels papermill starts inherit this process's environment: the same as the Ray
    # engine's notebook tasks get (no frozen progress bars in the executed copies)
    kernel_env = {**cluster.threads_env(cpu_cores()), "TQDM_DISABLE": "1"}
    # the runner's own bar is made first: tqdm reads TQDM_DISABLE when a bar is made
    with (
        tqdm(total=len(tasks), desc="study", unit="notebook", disable=not progress) as bar,
        cluster.temporary_env(**kernel_env),
    ):
        try:
            for task in tasks:
                bar.set_postfix_str(task.notebook.stem)
                result = _execute_task(
                    str(task.notebook), str(task.target), task.params, kernel_name, str(cwd), None
                )
                bar.update(1)
                _record(task, result, manifest, manifest_path, t_study)
        except KeyboardInterrupt:
            _close(manifest, manifest_path, t_study, status="interrupted")
            raise


def _record(
    task: _NotebookTask, result: dict, manifest: dict, manifest_path: Path, t_study: float
) -> None:
    """Put one finished notebook's entry in the manifest (on disk at once); RunError if it
    failed."""
    entry = {
        "executed": _display_path(task.target, manifest_path.parent),
        "parameters": sorted(task.params),
        **result,
    }
    manifest["notebooks"][task.notebook.stem] = entry
    manifest["notebooks"] = dict(sorted(manifest["notebooks"].items()))
    if result["status"] == "ok":
        _write_json_atomic(manifest, manifest_path)
        return
    _close(manifest, manifest_path, t_study, status="failed", failed=task.notebook.stem)
    raise RunError(
        f"notebook {task.notebook.name} failed ({result['error']}); "
        f"see {task.target} for the traceback"
    )


def _execute_task(
    nb: str, target: str, params: dict, kernel_name: str, cwd: str, after: dict | None
) -> dict[str, Any]:
    """The body of a notebook task: papermill ``nb`` into ``target`` once ``after`` (the upstream
    notebook's result, resolved by Ray before this runs) is ok; returns the manifest fields."""
    if after is not None and after["status"] != "ok":
        return {"status": "skipped", "error": f"upstream notebook {after['status']}"}
    started, t0 = _now(), time.perf_counter()
    error = _execute_notebook(Path(nb), Path(target), params, kernel_name, Path(cwd), False)
    result = {
        "started": started,
        "finished": _now(),
        "duration_s": round(time.perf_counter() - t0, 2),
        "status": "ok" if error is None else "failed",
    }
    if error is not None:
        result["error"] = _notebook_error(error)
    return result


def _resolve_out(
    out_dir: str | os.PathLike | None,
    params: dict[str, Any],
    params_file: list[Path],
    results_dir: str | os.PathLike,
    allow_dirty: bool,
) -> Path:
    """The absolute results folder (``out_dir``, else the params' ``out_dir``; a relative one is
    relative to the caller, not to the kernels' cwd), checked by :func:`check_results_target`."""
    out = Path(out_dir if out_dir is not None else params["out_dir"])
    if not out.is_absolute():
        out = Path.cwd() / out  # --out is relative to the caller, not to the kernels' cwd
    out = out.resolve()
    check_results_target(out, params_file, Path(results_dir), allow_dirty)
    return out


def _start_manifest(
    manifest_path: Path,
    params_file: list[Path],
    params: dict[str, Any],
    selected: list[Path],
    only: list[str] | None,
) -> dict[str, Any]:
    """A 'running' manifest, written to ``manifest_path``: params, git state, versions, machine.
    With ``only``, the entries of the other notebooks in an existing manifest are kept."""
    previous: dict[str, Any] = {}
    if only and manifest_path.is_file():
        try:
            previous = json.loads(manifest_path.read_text()).get("notebooks", {})
        except (OSError, ValueError):
            previous = {}  # an unreadable old manifest is replaced, not fatal
    manifest: dict[str, Any] = {
        # one file as a string (the common case), several as the list applied in order
        "params_file": (
            _display_path(params_file[0], REPO_ROOT)
            if len(params_file) == 1
            else [_display_path(p, REPO_ROOT) for p in params_file]
        ),
        "seed": params.get("seed"),
        "params": params,
        "only": [nb.name for nb in selected] if only else None,
        "git": git_state(),
        "versions": library_versions(),
        "machine": machine_summary(),
        "started": _now(),
        "finished": None,
        "duration_s": None,
        "status": "running",
        "notebooks": dict(previous),
    }
    _write_json_atomic(manifest, manifest_path)
    return manifest


def _execute_notebook(
    nb: Path,
    target: Path,
    parameters: dict[str, Any],
    kernel_name: str,
    cwd: Path,
    progress: bool,
) -> BaseException | None:
    """Run one notebook with papermill into ``target``; the error it raised, or None.
    KeyboardInterrupt propagates."""
    import papermill as pm

    try:
        pm.execute_notebook(
            str(nb),
            str(target),
            parameters=parameters,
            kernel_name=kernel_name,
            cwd=str(cwd),
            progress_bar=progress,
            log_output=False,
        )
    except Exception as exc:  # papermill's execution error, a dead kernel, a missing kernel
        return exc
    return None


def _close(manifest: dict, path: Path, t_start: float, **fields: Any) -> None:
    manifest.update(finished=_now(), duration_s=round(time.perf_counter() - t_start, 2), **fields)
    _write_json_atomic(manifest, path)


# ---------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m afss_utils.run",
        description="Run the study's notebooks in order with papermill and record a manifest.",
    )
    parser.add_argument(
        "--params",
        nargs="+",
        default=[str(DEFAULT_PARAMS)],
        help="params file(s): overlays on params/default.yaml, applied in order "
        "(default: the default itself)",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated notebook numbers to run, e.g. 01,02 (default: all)",
    )
    parser.add_argument("--out", default=None, help="results folder (default: params out_dir)")
    parser.add_argument(
        "--notebooks-dir", default=str(NOTEBOOKS_DIR), help="folder of NN_*.ipynb notebooks"
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="let a tree with uncommitted changes write into results/",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s.strip()] if args.only else None
    try:
        manifest = run_study(
            args.params,
            args.out,
            only=only,
            progress=not args.no_progress,
            notebooks_dir=args.notebooks_dir,
            allow_dirty=args.allow_dirty,
        )
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. ParamsError: one line naming the file, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    ran = [k for k, v in manifest["notebooks"].items() if v["status"] == "ok"]
    print(f"study done in {manifest['duration_s']} s: {', '.join(ran)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
