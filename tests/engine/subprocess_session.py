"""Run an engine session module in its own process (vLLM never lives in the pytest process) and read
the one `REPORT {json}` line it prints. Shared by the engine tests."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REPORT_PREFIX = "REPORT "


def run_session(module: str, work: Path, timeout_s: float) -> dict[str, Any]:
    # find_spec, not importorskip: importing vLLM here would cost the pytest process ~20 s for nothing.
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (CI installs it)")
    env = {
        **os.environ,
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, str(work)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    assert proc.returncode == 0 and len(lines) == 1, (
        f"engine session failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[0].removeprefix(REPORT_PREFIX))
