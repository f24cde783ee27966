from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("ray", "vllm", "fastapi", "torch", "transformers")


def test_core_imports_no_heavy_frameworks() -> None:
    # A fresh interpreter: other tests may already have imported anything. The core (video, analysis) and
    # the pure libraries the deployments and jobs share (contracts, settings, storage, job store) stay light.
    modules = "serve_app.video, serve_app.devtools.synthetic, serve_app.analysis, serve_app.schemas, serve_app.config"
    modules += ", serve_app.store.files, serve_app.store.jobs, serve_app.errors, data_jobs.inputs, data_jobs.store"
    modules += ", serve_app.search, serve_app.speech, serve_app.store.media"
    modules += ", serve_app.video.thumbnails, serve_app.analysis.chapters"
    code = f"import sys, {modules}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == ""


#: What the core may import of serve_app: itself and the pure contracts it is written against.
CORE_MAY_IMPORT = ("serve_app.config", "serve_app.errors", "serve_app.schemas")


def imported_after(module: str) -> tuple[list[str], list[str]]:
    """(serve_app/data_jobs modules, heavy frameworks) a fresh interpreter has loaded after importing `module`."""
    code = (
        f"import json, sys, {module}; print(json.dumps(["
        "sorted(m for m in sys.modules if m.split('.')[0] in ('serve_app', 'data_jobs')), "
        f"[m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    ours, heavy = json.loads(result.stdout)
    return ours, heavy


@pytest.mark.parametrize("core", ["serve_app.video", "serve_app.analysis"])
def test_core_is_independent_of_the_flow_and_the_edges(core: str) -> None:
    # Each core package alone: it knows nothing of the analysis flow, the engine, HTTP, storage, the Serve
    # deployments or the dev tools (test clips live in serve_app.devtools, never in the video core).
    ours, heavy = imported_after(core)
    assert heavy == []
    outside = [m for m in ours if m != "serve_app" and m.split(".")[:2] != core.split(".") and m not in CORE_MAY_IMPORT]
    assert outside == [], f"{core} imports {outside}"
    assert "serve_app.flow" not in ours


def test_engine_interface_and_implementation_import_without_vllm() -> None:
    # The deployments import the interface; the implementation imports vLLM (and torch) only when used.
    _, heavy = imported_after("serve_app.engine, serve_app.engine.vllm")
    assert heavy == []
