"""A real multi-node Ray cluster on one machine, for the `ray` tier and the Ray benchmarks.

Each node is its own `ray start --block` process in its own session, so every process of a node
(its raylet, agents, log monitor, and the workers its raylet forks) shares that session id: that
is how a node is found, killed mid-job (SIGKILL, like a machine that vanishes) and stopped with
nothing left behind. Each node carries a custom resource named after it (`hub3d_<name>`), so work
can be placed on a chosen node. Every port is picked free, and each node's temp dir lives under
the caller's folder, so runs side by side on one machine never meet.

Nodes advertise a loopback address: Ray rewrites 127.0.0.1 itself to the machine's routable
address (multi-node clusters refuse a 127.0.0.1 node), so another 127/8 address is used, which
keeps all cluster traffic on loopback. Ray's gRPC servers (GCS, raylets, workers) still listen on
every interface, whatever the node address: nothing in Ray 2.60 binds them to one. So the
cluster takes only clients holding its token (Ray's token authentication): `client_env`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["NODE_IP", "RayCluster", "RayNode", "head_and_n1", "ray_executable"]

NODE_IP = "127.0.0.2"
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's floor is 75 MiB; a job's bytes are far smaller
# Ray names a unix socket per node as <temp>/session_<date>_<pid>/sockets/plasma_store: the
# kernel's 107-byte limit leaves ~45 bytes for the temp dir itself.
_TEMP_DIR_MAX = 45
_PR_SET_PDEATHSIG = 1


def ray_executable() -> str:
    """The `ray` command of the Python running the tests."""
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else shutil.which("ray") or "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_us() -> None:
    """In the `ray start` child: SIGTERM when the test process dies, so a crashed run leaves no
    cluster behind (`ray start --block` stops its node on SIGTERM)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _session_of(proc: psutil.Process) -> int | None:
    try:
        return os.getsid(proc.pid)
    except OSError:
        return None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass
class RayNode:
    """One `ray start --block` process and everything it started."""

    name: str
    head: bool
    temp_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    resource: str = ""
    _node_id: str | None = None

    def __post_init__(self) -> None:
        self.resource = self.resource or f"hub3d_{self.name}"

    def processes(self) -> list[psutil.Process]:
        """Every live process of this node: its session, its descendants, and anything whose
        command line names its temp dir (in case one of them left the session)."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            found[root.pid] = root
            found.update((p.pid, p) for p in root.children(recursive=True))
        marker = f"{self.temp_dir}{os.sep}"
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid in found:
                continue
            cmdline = " ".join(proc.info["cmdline"] or ())
            if _session_of(proc) == self.proc.pid or marker in cmdline:
                found[proc.pid] = proc
        return [p for p in found.values() if _alive(p)]

    def raylet(self) -> psutil.Process | None:
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                if proc.name() == "raylet":
                    return proc
        return None

    @property
    def node_id(self) -> str | None:
        """The node's id (hex), read from its raylet's command line once it runs (and kept
        after the node is killed); None before."""
        raylet = None if self._node_id else self.raylet()
        if raylet is not None:
            with contextlib.suppress(psutil.Error):
                for arg in raylet.cmdline():
                    if arg.startswith("--node_id="):
                        self._node_id = arg.partition("=")[2]
        return self._node_id

    def memory_mb(self) -> dict[str, float]:
        """RSS summed over the node's processes (shared pages counted in each) and PSS."""
        rss = pss = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                full = proc.memory_full_info()
                rss, pss = rss + full.rss, pss + getattr(full, "pss", full.rss)
        return {"rss": round(rss / 2**20, 1), "pss": round(pss / 2**20, 1)}

    def kill(self, deadline_s: float = 10.0) -> list[int]:
        """SIGKILL every process of the node at once, as when its machine is lost; returns the
        pids killed. Raises TimeoutError if any survives `deadline_s`."""
        killed: list[int] = []
        end = time.monotonic() + deadline_s
        while procs := self.processes():
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
                    killed.append(proc.pid)
            if time.monotonic() > end:
                raise TimeoutError(f"node {self.name}: still running after SIGKILL: {procs}")
            time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        return sorted(set(killed))

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM (`ray start --block` stops its own processes), then SIGKILL what is left."""
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        self.kill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class RayCluster:
    """A head and any number of other nodes, all on this machine.

    `RayCluster(folder).start()` starts the head; `add_node("n1", num_cpus=1)` another node.
    `stop()` ends them all (others first, the head last) and raises if any process survives.
    """

    root: Path
    node_ip: str = NODE_IP
    port: int = field(default_factory=_free_port)
    env: dict[str, str] = field(default_factory=dict)  # e.g. RAY_health_check_period_ms
    # Ray's servers listen on every interface: only clients holding this token get in.
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    ray: str = field(default_factory=ray_executable)  # the `ray` of the env the nodes run in
    nodes: list[RayNode] = field(default_factory=list)
    _own_root: Path | None = None

    def __post_init__(self) -> None:
        if len(str(self.root)) + len("/head") > _TEMP_DIR_MAX:
            self._own_root = Path(tempfile.mkdtemp(prefix="hub3d-ray-"))
            self.root = self._own_root

    @property
    def address(self) -> str:
        return f"{self.node_ip}:{self.port}"

    @property
    def client_env(self) -> dict[str, str]:
        """What a driver's environment needs to connect (set before `ray.init`; a process
        keeps the first token it read)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    def node(self, name: str) -> RayNode:
        return next(n for n in self.nodes if n.name == name)

    def _spawn(self, name: str, args: list[str], num_cpus: int,
               resources: dict[str, float]) -> RayNode:
        temp_dir = self.root / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.root / f"{name}.log"
        resource = f"hub3d_{name}"
        (self.root / "tmp").mkdir(exist_ok=True)
        env = {
            **os.environ, "RAY_USAGE_STATS_ENABLED": "0",
            "TMPDIR": str(self.root / "tmp"),  # what the nodes' workers write stays in here
            **self.client_env,
            # the autoscaler's metrics server otherwise takes the same fixed port in every run
            "AUTOSCALER_METRIC_PORT": str(_free_port()), **self.env,
        }
        cmd = [
            self.ray, "start", "--block", *args,
            "--node-ip-address", self.node_ip, "--num-cpus", str(num_cpus), "--num-gpus", "0",
            "--resources", json.dumps({resource: 100, **resources}),
            "--temp-dir", str(temp_dir), "--object-store-memory", str(OBJECT_STORE_BYTES),
            "--node-manager-port", str(_free_port()),
            "--object-manager-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port()),
            "--dashboard-agent-grpc-port", str(_free_port()),
            "--dashboard-agent-listen-port", str(_free_port()),
            "--metrics-export-port", str(_free_port()),
            "--disable-usage-stats", "--log-style", "record",
        ]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_die_with_us)
        node = RayNode(name, not self.nodes, temp_dir, log_path, proc, resource)
        self.nodes.append(node)
        return node

    def start(self, num_cpus: int = 1, resources: dict[str, float] | None = None,
              deadline_s: float = 60.0) -> RayCluster:
        """Start the head; returns once its raylet runs (its GCS answers then)."""
        self._spawn("head", [
            "--head", "--port", str(self.port), "--include-dashboard", "false",
            "--dashboard-port", str(_free_port()),
        ], num_cpus, resources or {})
        self.wait_started(self.head, deadline_s)
        return self

    def add_node(self, name: str, num_cpus: int = 1, resources: dict[str, float] | None = None,
                 *, wait: bool = True, deadline_s: float = 60.0) -> RayNode:
        """Start another node that joins the head; one log monitor per machine is enough."""
        if any(n.name == name for n in self.nodes):
            raise ValueError(f"a node named {name!r} exists already")
        node = self._spawn(name, ["--address", self.address, "--include-log-monitor", "false"],
                           num_cpus, resources or {})
        if wait:
            self.wait_started(node, deadline_s)
        return node

    def wait_started(self, node: RayNode, deadline_s: float = 60.0) -> None:
        """Until `ray start` says the node runs and its raylet is up (node id known)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if node.proc.poll() is not None:
                raise RuntimeError(f"ray start for node {node.name} exited with"
                                   f" {node.proc.returncode}:\n{node.log_tail()}")
            if "Ray runtime started" in node.log_tail(200) and node.node_id:
                return
            time.sleep(0.1)
        raise TimeoutError(f"node {node.name} not started after {deadline_s} s:\n"
                           f"{node.log_tail()}")

    def leftovers(self) -> list[psutil.Process]:
        return [p for n in self.nodes for p in n.processes()]

    def stop(self) -> float:
        """Stop every node (the others first: they hang while their head is gone); returns the
        seconds it took. Raises RuntimeError naming any process that survives."""
        started = time.perf_counter()
        try:
            for node in reversed(self.nodes):
                node.stop()
            left = self.leftovers()
            if left:
                raise RuntimeError(f"Ray processes left after stop: {left}")
        finally:
            if self._own_root is not None:
                shutil.rmtree(self._own_root, ignore_errors=True)
        return time.perf_counter() - started


@contextlib.contextmanager
def head_and_n1(root: Path, num_cpus: int = 1, env: dict[str, str] | None = None,
                **options: Any) -> Iterator[RayCluster]:
    """A head and a node `n1` (num_cpus each), stopped on the way out. The repo is on the
    nodes' PYTHONPATH (their actors import hub3d and the test backends), and a lost node is
    declared dead after 5 missed health checks 1 s apart (Ray's default: 3 s apart)."""
    repo = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    cluster = RayCluster(root, env={"PYTHONPATH": path, "RAY_health_check_period_ms": "1000",
                                    **(env or {})}, **options)
    try:
        cluster.start(num_cpus=num_cpus)
        cluster.add_node("n1", num_cpus=num_cpus)
        yield cluster
    finally:
        cluster.stop()
