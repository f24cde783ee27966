"""`ray job submit` of the archive job against a real `ray start --head` cluster (token auth on)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve_app.schemas import VideoAnalysis
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A separate head node with the dashboard (job submission needs it); killed as a process group."""
    # Own ports throughout: the session's cluster already holds Ray's defaults (e.g. the agent's 52365).
    port, dashboard, agent = free_port(), free_port(), free_port()
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    log = (tmp_path_factory.mktemp("ray-head") / "ray-start.log").open("w")
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            f"--port={port}",
            f"--dashboard-port={dashboard}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-agent-listen-port={agent}",
            "--num-cpus=4",
            "--include-dashboard=true",
            "--disable-usage-stats",
            "--block",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/version", timeout=2).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            raise AssertionError("ray start --head did not bring up the dashboard in 120 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # `ray stop` would also stop the test session's own cluster
        proc.wait(timeout=30)
        log.close()
        current = Path("/tmp/ray/ray_current_cluster")
        if current.exists() and f":{port}" in current.read_text():
            current.unlink()  # else a plain ray.init() would try this dead cluster


def test_ray_job_submit_runs_the_archive_job(ray_head: str, clip_8s_mp4: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(clip_8s_mp4, inputs / "clip.mp4")
    (inputs / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    submit = [str(VENV_BIN / "ray"), "job", "submit", "--address", ray_head, "--runtime-env-json"]
    submit += [json.dumps({"env_vars": {"PYTHONUNBUFFERED": "1"}})]
    archive = [sys.executable, "-m", "data_jobs.archive", "--input", str(inputs), "--output", str(out), "--mode", "ui"]
    for _ in range(36):  # the dashboard answers before its job agent is ready (slow on a busy box)
        command = [*submit, "--submission-id", f"archive-{time.time_ns()}", "--", *archive]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if "No available agent" not in proc.stdout + proc.stderr:
            break
        time.sleep(5)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "succeeded" in proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["videos"] == {"inputs": 2, "ok": 1, "failed": 1, "skipped": 0}
    (analysis_file,) = (out / "analyses").glob("*.json")
    analysis = VideoAnalysis.model_validate_json(analysis_file.read_text())
    assert analysis.request.mode == "ui" and all(c.ok for c in analysis.chunks)
