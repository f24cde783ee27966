from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("ray", "vllm", "fastapi", "torch", "transformers")


def test_core_imports_no_heavy_frameworks() -> None:
    # A fresh interpreter: other tests may already have imported anything. The core (video, analysis) and
    # the pure libraries the deployments and jobs share (contracts, settings, storage, job store) stay light.
    modules = "serve_app.video, serve_app.devtools.synthetic, serve_app.analysis, serve_app.schemas, serve_app.config"
    modules += ", serve_app.store.files, serve_app.store.jobs, serve_app.errors, data_jobs.inputs, data_jobs.store"
    code = f"import sys, {modules}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == ""
