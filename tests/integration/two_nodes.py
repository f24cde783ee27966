"""A real two-node Ray cluster on one machine whose nodes do not share node-local paths.

    head     `ray start --head`: the Serve proxy, Ingress, Aggregator and JobRunner (resource `head_node`)
    worker   `ray start --address` in its own mount namespace (`unshare --mount`) with a private tmpfs
             over the head's node-local folder: Chunker, ASR and VLM replicas and the archive's decode
             tasks (resource `worker_node`)

The head's node-local folder is pytest's temporary root: the head's `serve.store_dir`, the test's
clips and any path a test makes there do not exist on the worker, as on two machines. The shared store
is a folder outside it (standing in for an RWX volume mounted at the same path on every node). Each node runs `ray start
--block` in its own process group, so stopping the cluster kills exactly its processes (never `ray stop`,
which would also stop the test session's own cluster).

The app is deployed by a short-lived driver (`python -m tests.integration.two_nodes deploy ...`); Serve
keeps it running on the cluster after the driver exits.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
HEAD, WORKER = "head_node", "worker_node"


@dataclass
class TwoNodes:
    address: str  # GCS address for drivers
    url: str  # the Serve proxy on the head
    processes: list[subprocess.Popen]
    logs: Path

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.processes:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def driver_env() -> dict[str, str]:
    # Token auth (Ray 2.60's default for `ray start`): every process reads ~/.ray/auth_token, which both
    # nodes see (/root is not masked).
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "PYTHONPATH": str(REPO_ROOT)}


def start(gcs_port: int, http_port: int, logs: Path, masked: Path, cpus: int = 3) -> TwoNodes:
    """Both nodes up (or an error). `masked`: the head's node-local folder (pytest's temporary root),
    which the worker's mount namespace covers with an empty tmpfs; `logs` (in it) gets each node's output."""
    head, address = start_head(gcs_port, logs, cpus, {HEAD: 100})
    common = ["--num-cpus", str(cpus), "--disable-usage-stats", "--block"]
    # The worker's own mount namespace: a fresh tmpfs hides the head's node-local folder (the checkout and
    # its venv may live anywhere, /tmp included, so only that folder is covered).
    worker_cmd = " ".join(
        [RAY, "start", "--address", address, "--resources", f"'{json.dumps({WORKER: 100})}'", *common]
    )
    worker = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs reelserve-worker-local {shlex.quote(str(masked))} && exec {worker_cmd}"],
        stdout=(logs / "worker.log").open("w"), stderr=subprocess.STDOUT, env=driver_env(), start_new_session=True,
    )  # fmt: skip
    nodes = TwoNodes(address=address, url=f"http://127.0.0.1:{http_port}", processes=[head, worker], logs=logs)
    try:
        wait_for_nodes(address, 2, worker)
    except BaseException:
        nodes.stop()
        raise
    return nodes


def start_head(
    gcs_port: int, logs: Path, cpus: int, resources: dict[str, float] | None = None
) -> tuple[subprocess.Popen, str]:
    """A head node up in its own process group (killing the group stops exactly this cluster): (its
    `ray start --block` process, its GCS address); its output goes to `logs`/head.log."""
    logs.mkdir(parents=True, exist_ok=True)
    ray_tmp = f"/tmp/rs2n-{gcs_port}"  # short: Ray's socket paths must stay under 108 bytes
    head = subprocess.Popen(
        [RAY, "start", "--head", "--port", str(gcs_port), "--include-dashboard=false",
         "--resources", json.dumps(resources or {}), "--temp-dir", ray_tmp,
         "--num-cpus", str(cpus), "--disable-usage-stats", "--block"],
        stdout=(logs / "head.log").open("a"), stderr=subprocess.STDOUT, env=driver_env(), start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{gcs_port}"
    try:
        wait_for_nodes(address, 1, head)
    except BaseException:
        os.killpg(head.pid, signal.SIGKILL)
        raise
    return head, address


def wait_for_nodes(address: str, count: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        out = driver(address, "nodes", check=False)
        if out is not None and len(out) >= count:
            return
        time.sleep(2)
    raise TimeoutError(f"{count} Ray node(s) did not come up at {address}")


def driver(address: str, command: str, *args: str, check: bool = True, timeout_s: float = 600) -> Any:
    """Run one driver command (below) in a fresh interpreter connected to the cluster; its JSON answer."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.two_nodes", command, address, *args],
        cwd=REPO_ROOT, env=driver_env(), capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ANSWER ")]
    if proc.returncode != 0 or len(lines) != 1:
        if not check:
            return None
        raise RuntimeError(
            f"driver {command} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return json.loads(lines[0].removeprefix("ANSWER "))


def wait_ready(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"{url} never became ready")


# -- driver commands (run in their own interpreter) ---------------------------------------------------
def _nodes() -> list[dict[str, Any]]:
    import ray

    return [{"id": n["NodeID"], "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]]


def _deploy(overrides_json: str) -> dict[str, Any]:
    from ray import serve

    from serve_app.app import build_graph
    from serve_app.config import ServeConfig

    overrides = json.loads(overrides_json)
    settings = ServeConfig.load(None).settings(overrides)
    serve.start(http_options={"host": "127.0.0.1", "port": settings.serve.port, "location": "HeadOnly"})
    serve.run(build_graph(settings), name="reelserve", route_prefix="/")
    return {"deployed": True}


def _placement() -> dict[str, list[str]]:
    """Deployment name → node ids of its replicas (asked of each replica actor itself)."""
    import ray

    found: dict[str, list[str]] = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor["name"]
        if not name.startswith("SERVE_REPLICA::"):
            continue
        deployment = name.removeprefix("SERVE_REPLICA::").split("#")[1]
        handle = ray.get_actor(name, namespace=actor["namespace"])
        node = ray.get(handle.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()))
        found.setdefault(deployment, []).append(node)
    return found


def _main() -> None:
    import ray

    command, address, *args = sys.argv[1:]
    ray.init(address=address, log_to_driver=False)
    try:
        answer = {"nodes": _nodes, "deploy": _deploy, "placement": _placement}[command](*args)
    finally:
        ray.shutdown()
    sys.stdout.write("ANSWER " + json.dumps(answer) + "\n")


if __name__ == "__main__":
    _main()
