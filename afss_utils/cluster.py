"""Ray for the study: a local instance by default, a cluster by address; trainings as tasks.

The study has two kinds of independent work, and Ray runs both:

- **trainings** (Table III rows, debris students, classification runs): each one is a Ray task
  (:func:`submit`) asking for ``cpus_per_training`` CPUs and ``gpus_per_training`` GPUs, run in a
  fresh worker process (``max_calls=1``, so no ultralytics or torch state leaks from one training
  into the next) with torch, OpenCV and ultralytics on exactly that many threads. A training's
  thread count is part of its result (DESIGN.md): pinned, a row gives the same bytes alone, beside
  another training, on a laptop or on a cluster node. Every task is submitted before any is
  awaited (:func:`gather`), so as many trainings run at once as the cluster has CPUs (or GPUs)
  for them; on 2 cores two single-thread YOLO trainings give only 1.07x the trainings per hour of
  one two-thread training (benchmarks/bench_ray.py), since ultralytics' CPU data pipeline runs in
  the training's own thread.
- **labelling** (:mod:`afss_utils.pseudolabel` with ``engine="ray"``): ``ray.data`` over the
  image list, an actor pool that loads the teacher once per actor.

``params['cluster']``: ``address`` null starts a local Ray with this machine's cores (no
dashboard) or joins the one named by ``$RAY_ADDRESS`` (the study runner sets it, so the notebooks
it runs share one instance); ``auto`` or ``ray://host:port`` joins an existing cluster. Nothing
here imports Ray until a function is called: a single-stage CLI without ``--engine ray`` pays no
start-up.

``engine: serial`` runs the same work without Ray, one unit after another in this process (the
runner's notebooks too): for a machine where Ray cannot be installed, e.g. a GPU box with no
package index. Each training still runs on exactly ``cpus_per_training`` threads, so a row's
bytes are those the Ray engine gives; only the side-by-side speed-up is lost.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from afss_utils.config import ParamsError

# Variables an inherited launcher (torchrun, Slurm, a DDP parent) leaves behind; ultralytics reads
# them as "I am one rank of a distributed run" and trains on the wrong device or waits forever.
DDP_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)
ENGINES = ("ray", "serial")
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # read by Ray when it is imported
THREADS_ENV = "AFSS_THREADS"  # read by config.cpu_cores(): the threads this process may use
# What a process reads its thread count from at start: torch (OpenMP), BLAS, OpenCV, this package
THREAD_VARIABLES = (THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")
# Where weights and caches are, and whether the network may be used: a worker process gets the
# environment its raylet was started with, so a model cache named by the caller after Ray started
# (a notebook kernel, a test) would otherwise be invisible to the task that loads the teacher.
FORWARDED_ENV = (
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "AFSS_ALLOW_DOWNLOAD",
    "AFSS_CACHE",
    "TORCH_HOME",
)


@dataclass(frozen=True)
class ClusterConfig:
    """``params['cluster']``: where Ray runs and what each unit of work asks of it."""

    engine: str = "ray"
    address: str | None = None
    cpus_per_training: int = 1
    gpus_per_training: float = 0
    labelling_actors: int = 2

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> ClusterConfig:
        p = dict(params or {})
        unknown = sorted(set(p) - {f.name for f in fields(cls)})
        if unknown:
            raise ParamsError(f"unknown params key(s) cluster.{', cluster.'.join(unknown)}")
        cfg = cls(**p)
        if cfg.engine not in ENGINES:
            raise ParamsError(
                f"cluster.engine must be one of {', '.join(ENGINES)}, got {cfg.engine!r}"
            )
        if cfg.cpus_per_training < 1:
            raise ParamsError(
                f"cluster.cpus_per_training must be >= 1, got {cfg.cpus_per_training}"
            )
        if cfg.gpus_per_training < 0:
            raise ParamsError(
                f"cluster.gpus_per_training must be >= 0, got {cfg.gpus_per_training}"
            )
        if cfg.labelling_actors < 1:
            raise ParamsError(f"cluster.labelling_actors must be >= 1, got {cfg.labelling_actors}")
        return cfg


def connect(config: ClusterConfig | Mapping[str, Any] | None = None, num_cpus: int | None = None):
    """Start or join Ray once per process and return the ``ray`` module.

    ``config.address`` None: join ``$RAY_ADDRESS`` when set, else start a local instance with
    ``num_cpus`` (default: this process's cores) and no dashboard; otherwise join the address.
    Sets ``$RAY_ADDRESS`` to the instance joined, so child processes (papermill's kernels) join
    the same one instead of starting their own.
    """
    from afss_utils.config import cpu_cores, setup_offline

    if not isinstance(config, ClusterConfig):
        config = ClusterConfig.from_params(config)
    if config.engine != "ray":
        raise ValueError(f"cluster.engine is {config.engine!r}: this work runs without Ray")
    setup_offline()
    address = config.address or os.environ.get("RAY_ADDRESS") or None
    loopback = address is None or address.split(":")[0] in ("127.0.0.1", "localhost")
    if loopback:
        # Ray refuses the loopback for a node's address unless told it is a single-machine
        # instance; a local study must not listen on the machine's network interfaces.
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "Ray is not installed: pip install 'ray[data]' (environment.yml lists it), or set "
            "cluster.engine: serial in your params to run every training and notebook one "
            "after another in this process"
        ) from exc

    if loopback and os.environ[LOOPBACK_ENV] == "0":
        # Ray reads the variable once, on import, which may have happened before this call
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False

    if not ray.is_initialized():
        common = {"log_to_driver": False, "configure_logging": False}
        with unseeded_random():
            if address is None:
                ray.init(
                    num_cpus=num_cpus or cpu_cores(),
                    include_dashboard=False,
                    # a local instance listens on the loopback only
                    _node_ip_address="127.0.0.1",
                    **common,
                )
            else:
                ray.init(address=address, **common)
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    return ray


def worker_env(**extra: str) -> dict[str, str]:
    """``runtime_env`` of the study's tasks and actors: the :data:`FORWARDED_ENV` variables this
    process has set, plus ``extra``."""
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    return env | extra


def shutdown() -> None:
    """Stop this process's Ray connection (and the local instance it started)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@contextlib.contextmanager
def unseeded_random():
    """Run the block on Python's global ``random`` freshly seeded from the OS, then give the
    caller back its own random state.

    A driver's GCS error/log subscribers take their ids from the global ``random``
    (``random.getrandbits``). Two notebook kernels that seed it alike (``seed_everything``)
    before joining Ray get the same subscriber id, and the GCS then answers each one's long poll
    by ending the other's: the committed study's ``gcs_server`` spent 8 CPU-minutes on ~2,500
    empty polls a second while notebooks ran side by side (smoke study: 74 CPU-s of 270 s).
    """
    state = random.getstate()
    random.seed()
    try:
        yield
    finally:
        random.setstate(state)


@contextlib.contextmanager
def temporary_env(**values: str | None):
    """Run the block with each variable set to its value (None: unset), then restore them."""
    saved = {k: os.environ.get(k) for k in values}

    def apply(env: Mapping[str, str | None]) -> None:
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    apply(values)
    try:
        yield
    finally:
        apply(saved)


def threads_env(n: int) -> dict[str, str]:
    """The environment that puts a process started with it on ``n`` threads."""
    return dict.fromkeys(THREAD_VARIABLES, str(n))


@contextlib.contextmanager
def pinned_threads(n: int):
    """Run the block with torch, OpenCV, OpenMP/BLAS and ultralytics on ``n`` threads."""
    import cv2
    import torch

    saved = torch.get_num_threads(), cv2.getNumThreads()
    with temporary_env(**threads_env(n)):
        torch.set_num_threads(n)
        cv2.setNumThreads(n)
        try:
            yield
        finally:
            torch.set_num_threads(saved[0])
            cv2.setNumThreads(saved[1])


def _run_pinned(fn: Callable, threads: int, args: tuple, kwargs: dict) -> Any:
    """The body of every training task: a clean environment, ``threads`` threads, ``fn``."""
    for key in DDP_VARIABLES:
        os.environ.pop(key, None)
    with pinned_threads(threads):
        return fn(*args, **kwargs)


def submit(fn: Callable, *args: Any, config: ClusterConfig | None = None, **kwargs: Any):
    """``fn(*args, **kwargs)`` as a Ray task in a fresh worker on ``config.cpus_per_training``
    threads; returns its ObjectRef (:func:`gather` awaits several).

    ``fn`` must write its files atomically under a folder of its own: Ray runs a task at least
    once, and a retry (a worker killed mid-training) starts it again from the beginning.
    """
    config = config or ClusterConfig()
    ray = connect(config)
    task = ray.remote(max_calls=1)(_run_pinned).options(
        num_cpus=config.cpus_per_training,
        num_gpus=config.gpus_per_training,
        max_retries=2,
        name=getattr(fn, "__name__", "training"),
        runtime_env={"env_vars": worker_env()},
    )
    return task.remote(fn, config.cpus_per_training, args, kwargs)


def gather(refs: Mapping[Hashable, Any], desc: str = "trainings", progress: bool = True) -> dict:
    """Await submitted tasks: ``{key: ObjectRef}`` -> ``{key: result}`` in the same key order.

    A progress bar counts finished tasks; the first task that failed (after its retries)
    raises its error, naming its key, once the others are cancelled.
    """
    from afss_utils.progress import bar as progress_bar

    if not refs:
        return {}
    import ray

    key_of = {ref: key for key, ref in refs.items()}
    pending, results = list(key_of), {}
    with progress_bar(total=len(refs), desc=desc, unit="task", progress=progress) as bar:
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        results[key_of[ref]] = ray.get(ref)
                    except Exception as exc:
                        cause = getattr(exc, "cause", None) or exc  # the task's own exception
                        raise RuntimeError(
                            f"{desc}: task {key_of[ref]!r} failed: {type(cause).__name__}: {cause}"
                        ) from exc
                    bar.update(1)
        except BaseException:  # a failure or Ctrl-C: do not leave trainings running
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    return {key: results[key] for key in refs}


def run_all(
    calls: Mapping[Hashable, Callable[[], Any]],
    config: ClusterConfig | None = None,
    desc: str = "trainings",
    progress: bool = True,
) -> dict:
    """``{key: fn}`` (argument-free callables, e.g. ``functools.partial``) -> ``{key: fn()}``,
    every task submitted, in the mapping's order, before any is awaited.

    ``config.engine == "serial"``: each call in turn in this process, on the same pinned threads
    (the first failure raises, naming its key, as :func:`gather` does)."""
    config = config or ClusterConfig()
    if config.engine == "serial":
        return _run_serial(calls, config, desc, progress)
    return gather({key: submit(fn, config=config) for key, fn in calls.items()}, desc, progress)


def _run_serial(
    calls: Mapping[Hashable, Callable[[], Any]], config: ClusterConfig, desc: str, progress: bool
) -> dict:
    from afss_utils.progress import bar as progress_bar

    results = {}
    with progress_bar(total=len(calls), desc=desc, unit="task", progress=progress) as bar:
        for key, fn in calls.items():
            # this process is the caller's, not a fresh worker: its DDP variables come back
            try:
                with temporary_env(**dict.fromkeys(DDP_VARIABLES)):
                    results[key] = _run_pinned(fn, config.cpus_per_training, (), {})
            except Exception as exc:
                raise RuntimeError(
                    f"{desc}: task {key!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            bar.update(1)
    return results
