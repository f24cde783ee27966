from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("ray", "vllm", "fastapi", "torch", "transformers")


def test_video_core_imports_no_heavy_frameworks() -> None:
    # A fresh interpreter: other tests may already have imported anything.
    code = (
        "import sys, serve_app.video, serve_app.video.synthetic; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == ""
