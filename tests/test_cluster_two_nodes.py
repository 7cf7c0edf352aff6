"""Two Ray nodes on one machine (issue #20 point 6): a second node started with
``ray start --address`` on the loopback joins a ``ray start --head``; a labelling run and a
two-task training run use both nodes and give the same bytes as on a one-node Ray.

Everything listens on 127.0.0.1 only. The nodes are ``ray start --block`` subprocesses with a
temp dir of their own and token authentication on a token of their own; they are taken down by
SIGTERM to those two processes, never by ``ray stop`` (it would stop every Ray on the machine,
the test session's included). The driver is a subprocess too: a Python process joins one Ray
cluster only, and this session may already hold its own (``ray_local``).

Ray pitfalls this file works around (ray 2.60):
- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps 127.0.0.1 as the node address (with 1, Ray
  replaces a loopback ``--node-ip-address``/``--address`` by the machine's network interface),
  but then ``ray start --address`` refuses to add a node ("Multi-node Ray clusters are not
  supported on Windows and OSX"). :data:`JOIN` runs ``ray start`` with that guard alone lifted:
  every address Ray resolves still sees 0 and stays on the loopback.
- ``ray start --head`` turns token authentication on when ``~/.ray/auth_token`` exists, and a
  driver that does not find the same token is refused. The nodes and the driver are given
  ``RAY_AUTH_MODE=token`` and a token file of this test's own.
- A temp dir under pytest's ``tmp_path`` makes Ray's unix socket paths longer than the 107
  bytes allowed; the temp root is a short ``/tmp/afssray*`` folder.
- ``ray start --block`` drains its node for up to 30 s on SIGTERM (a Serve feature):
  ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0`` stops it at once; the second node is stopped
  before the head it would otherwise wait for.
- ``--dashboard-agent-listen-port`` defaults to 52365 on every node: two nodes on one machine
  (and any other Ray here) would collide, so each node gets a free port.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60  # the head's GCS port open; then, in the driver, both nodes alive
DRIVER_TIMEOUT_S = 240
STOP_TIMEOUT_S = 30

# ``ray start`` with only its multi-node guard lifted (see the module docstring): the CLI reads
# the flag through ``ray.scripts.scripts.ray_constants``, the address resolution through
# ``ray._private.services``, which keeps the real module and its RAY_ENABLE_..._CLUSTER=0.
JOIN = """
import sys, types
import ray._private.ray_constants as constants
import ray.scripts.scripts as scripts
multinode = types.ModuleType(constants.__name__)
multinode.__dict__.update(constants.__dict__)
multinode.ENABLE_RAY_CLUSTER = True
scripts.ray_constants = multinode
sys.argv[0] = "ray"
sys.exit(scripts.main())
"""

# The driver: ``python -c DRIVER SPEC_JSON``. Joins $RAY_ADDRESS (or starts a local Ray with 2
# CPUs when it is unset), waits for ``nodes`` alive nodes, labels ``labels_data`` with the
# classical teacher (vflip + WBF) on 2 Ray Data actors, trains two YOLO11n-seg students (seeds
# 0 and 1) as two tasks, and writes report.json: the nodes, and the node of each training and
# of each labelled image.
DRIVER = r"""
import functools, json, sys, time
from pathlib import Path

import ray
import ray.data

from afss_utils import cluster
from afss_utils.cluster import ClusterConfig
from afss_utils.config import load_params
from afss_utils.datasets import open_coco
from afss_utils.distill import train_fresh
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import pseudolabel
from afss_utils.students import build_student
from afss_utils.teachers import build_teacher
from afss_utils.teachers.classical import ClassicalThresholdTeacher

t0 = time.monotonic()
spec = json.loads(sys.argv[1])
out = Path(spec["out"])
out.mkdir(parents=True, exist_ok=True)
ray = cluster.connect(ClusterConfig(), num_cpus=2)
deadline = time.monotonic() + spec["wait_s"]
while True:
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    if len(nodes) >= spec["nodes"] or time.monotonic() > deadline:
        break
    time.sleep(0.5)
if len(nodes) != spec["nodes"]:
    sys.exit(f"expected {spec['nodes']} alive Ray nodes, found {len(nodes)}: {nodes}")
seconds = {"connect": time.monotonic() - t0}


class NodeRecordingTeacher(ClassicalThresholdTeacher):
    # The classical teacher, noting under ``record`` the Ray node of each image it labels.
    def __init__(self, record, **options):
        super().__init__(**options)
        self.record = Path(record)

    def predict_batch(self, views, prompt="spacecraft"):
        node = ray.get_runtime_context().get_node_id()
        with open(self.record / f"{node}.txt", "a") as f:
            f.write(f"{views[0].shape}\n")
        return super().predict_batch(views, prompt)


params = load_params()
options = {"top_k": 1, "device": "cpu"}
record = out / "label_nodes"
record.mkdir()
# both actors up before the first batch, so that each gets some (the output does not depend
# on which actor labels which image)
ray.data.DataContext.get_current().wait_for_min_actors_s = spec["wait_s"]
pseudolabel(
    build_teacher("classical_threshold", **options),  # names the run: the cache header
    open_coco(spec["labels_data"]),
    out / "labels.json",
    params["tta"],
    FusionConfig.from_params({**params["fusion"], "top_k": 1}),
    progress=False,
    engine="ray",
    cluster=ClusterConfig(labelling_actors=2),
    teacher_factory=functools.partial(NodeRecordingTeacher, str(record), **options),
)

seconds["labelling"] = time.monotonic() - t0 - sum(seconds.values())

data = open_coco(spec["train_data"])
gt = [
    {k: a[k] for k in ("image_id", "bbox", "segmentation")} | {"score": 1.0}
    for a in data.instances["annotations"]
]
yolo = {**load_params("params/smoke.yaml")["yolo"], "epochs": 2, "steps": 4}


def train_on_node(seed):
    node = ray.get_runtime_context().get_node_id()
    make = functools.partial(
        build_student, "yolo11_seg", {"device": "cpu", "seed": seed, "top_k": 1, "yolo": yolo}
    )
    record, _ = train_fresh(make, gt, data, data, out / f"seed{seed}")
    return {"node": node, "threads": record.threads}


trainings = cluster.run_all(
    {seed: functools.partial(train_on_node, seed) for seed in (0, 1)},
    ClusterConfig(cpus_per_training=1),
    progress=False,
)
seconds["training"] = time.monotonic() - t0 - sum(seconds.values())
report = {
    "seconds": {k: round(v, 1) for k, v in seconds.items()},
    "nodes": nodes,
    "trainings": {str(k): v for k, v in trainings.items()},
    "label_nodes": {p.stem: len(p.read_text().splitlines()) for p in record.glob("*.txt")},
}
(out / "report.json").write_text(json.dumps(report, indent=1))
cluster.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.is_file() else f"({path} missing)"


def _ray_processes(root: Path) -> list:
    """Live processes whose command line names ``root`` (Ray's GCS, raylets and agents carry
    their session folder in theirs)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
                str(root) in arg for arg in proc.info["cmdline"] or ()
            ):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _stop(procs: list[subprocess.Popen], root: Path) -> list[str]:
    """SIGTERM each ``ray start --block`` (it takes its node down), wait, SIGKILL what is left;
    returns what was still running after the SIGTERM and the wait, as strings."""
    import psutil

    started = []
    for p in procs:
        try:
            started += [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    started += [q for q in _ray_processes(root) if q not in started]
    for p in reversed(procs):  # the second node first: it would wait for a vanished head
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    _, alive = psutil.wait_procs(started, timeout=15)
    left = []
    for q in alive:
        try:
            if q.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{q.pid} {' '.join(q.cmdline())[:160]}")
            q.kill()
        except psutil.Error:
            pass
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # its own session: only what it started
            p.wait(10)
    return left


@pytest.fixture
def ray_root():
    """A short temp folder for Ray's sessions (unix socket paths must stay under 107 bytes),
    removed afterwards; the test fails if a process started under it is still running."""
    root = Path(tempfile.mkdtemp(prefix="afssray", dir="/tmp"))
    yield root
    left = _ray_processes(root)
    for q in left:
        q.kill()
    shutil.rmtree(root, ignore_errors=True)
    assert not left, f"Ray processes left running: {[q.pid for q in left]}"


@pytest.fixture
def two_nodes(ray_root):
    """A head and a second node, 1 CPU each, on 127.0.0.1 with a private token. Yields the
    environment a driver needs to join them (RAY_ADDRESS, auth). Both are stopped by signals
    afterwards, whatever the test did, and nothing they started may be left running."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None:
        pytest.skip("the ray CLI is not installed")
    token = ray_root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        # SIGTERM stops a node at once instead of draining it for up to 30 s (for Serve)
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    port = _free_port()
    common = [
        "--block",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--object-store-memory=500000000",
        "--disable-usage-stats",
        f"--temp-dir={ray_root / 'cluster'}",
    ]
    procs: list[subprocess.Popen] = []
    logs = {name: ray_root / f"{name}.log" for name in ("head", "worker")}

    def start(name, argv):
        with open(logs[name], "w") as log:
            procs.append(
                subprocess.Popen(
                    [*argv, f"--dashboard-agent-listen-port={_free_port()}", *common],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    t0 = time.monotonic()
    try:
        start("head", [ray, "start", "--head", f"--port={port}", "--include-dashboard=false"])
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert procs[0].poll() is None, f"ray start --head exited:\n{_tail(logs['head'])}"
            assert time.monotonic() < deadline, f"head not up in time:\n{_tail(logs['head'])}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        start("worker", [sys.executable, "-c", JOIN, "start", f"--address=127.0.0.1:{port}"])
        yield env | {"RAY_ADDRESS": f"127.0.0.1:{port}"}
        for name, p in zip(logs, procs, strict=True):
            assert p.poll() is None, f"ray node {name} died during the test:\n{_tail(logs[name])}"
    finally:
        t1 = time.monotonic()
        left = _stop(procs, ray_root)
        print(f"two nodes: held {t1 - t0:.0f} s, stopped in {time.monotonic() - t1:.0f} s")
    assert not left, f"still running after SIGTERM and {STOP_TIMEOUT_S} s: {left}"


def _drive(spec: dict, env: dict, log: Path) -> dict:
    """Run :data:`DRIVER` with ``spec`` in its own session; returns its report.json."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, json.dumps(spec)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rc = proc.wait(DRIVER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and a local Ray it started
            proc.wait(10)
            pytest.fail(f"driver ran past {DRIVER_TIMEOUT_S} s:\n{_tail(log)}")
    assert rc == 0, f"driver failed ({rc}):\n{_tail(log)}"
    return json.loads((Path(spec["out"]) / "report.json").read_text())


def test_two_nodes_share_the_work_and_give_the_one_node_bytes(
    two_nodes, ray_root, make_shapes, tmp_path
):
    t0 = time.monotonic()
    spec = {
        "labels_data": str(make_shapes(tmp_path / "labels_data", n=16, size=96, seed=1)),
        "train_data": str(make_shapes(tmp_path / "train_data", n=8, size=64, seed=0)),
        "wait_s": START_TIMEOUT_S,
    }
    # The one-node run first: the second node joins the head meanwhile. RAY_ADDRESS unset: the
    # driver starts a local Ray (2 CPUs) under ray_root and stops it when it ends.
    one_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    one_env |= {"RAY_TMPDIR": str(ray_root / "one")}
    one = _drive({**spec, "out": str(tmp_path / "one"), "nodes": 1}, one_env, tmp_path / "one.log")
    two = _drive(
        {**spec, "out": str(tmp_path / "two"), "nodes": 2}, two_nodes, tmp_path / "two.log"
    )
    # the local Ray lived under ray_root, so its leftovers would be found
    assert list((ray_root / "one").glob("ray/session_*")), "the one-node Ray was not under ray_root"

    assert len(two["nodes"]) == 2 and len(one["nodes"]) == 1
    # each training on a node of its own, one thread each
    assert {t["node"] for t in two["trainings"].values()} == set(two["nodes"])
    assert {t["threads"] for t in two["trainings"].values()} == {1}
    # both labelling actors labelled images, one per node
    assert set(two["label_nodes"]) == set(two["nodes"]), two["label_nodes"]
    assert sum(two["label_nodes"].values()) == sum(one["label_nodes"].values()) == 16
    # the same bytes as on one node
    for name in (
        "labels.json",
        "labels.empty.json",
        "seed0/test_predictions.json",
        "seed1/test_predictions.json",
    ):
        a, b = (tmp_path / "one" / name).read_bytes(), (tmp_path / "two" / name).read_bytes()
        assert a == b, f"{name} differs between one node and two"
    assert json.loads((tmp_path / "two" / "labels.json").read_text())  # labels were made
    seeds = [(tmp_path / "two" / f"seed{s}" / "test_predictions.json").read_bytes() for s in (0, 1)]
    assert seeds[0] != seeds[1]  # two different trainings, not one twice
    print(
        f"\ntest body {time.monotonic() - t0:.0f} s; one node {one['seconds']}, two {two['seconds']}"
    )
