"""Where the manifests and their source of truth are in the checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
SERVE_CONFIG = REPO_ROOT / "serve_config.yaml"
OVERLAYS = ("gpu", "cpu-dev", "job-shared")
