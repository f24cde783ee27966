"""Fixtures for the offline KubeRay manifest tests: the CRDs, and each overlay rendered once."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from serve_app.kube import REPO_ROOT, RenderOptions, render
from tests.k8s import structural

CRD_DIR = REPO_ROOT.parent / "shared" / "kuberay-crds" / "v1.7.0"
# job-shared needs a cluster name; any valid one renders the same document shape.
OVERLAY_OPTIONS = {
    "gpu": RenderOptions(overlay="gpu"),
    "cpu-dev": RenderOptions(overlay="cpu-dev"),
    "job-shared": RenderOptions(overlay="job-shared", cluster="reelserve-raycluster-abcde"),
}


@pytest.fixture(autouse=True)
def _no_reelserve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # REELSERVE_* in the test machine's environment would beat the args under test.
    for name in list(os.environ):
        if name.startswith("REELSERVE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def crds() -> dict[tuple[str, str], structural.CrdSchema]:
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR} (../shared is absent)")
    return structural.load_crds(CRD_DIR)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    if not (shutil.which("kubectl") or shutil.which("kustomize")):
        pytest.skip("rendering needs kubectl or kustomize on PATH")
    return {name: render(opts) for name, opts in OVERLAY_OPTIONS.items()}


def find(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)
