"""`reelserve k8s` through the real command (typer), no cluster needed for render and sync."""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from serve_app.cli import app

runner = CliRunner()
pytestmark = pytest.mark.skipif(not shutil.which("kubectl"), reason="rendering needs kubectl (kustomize)")


def test_render_prints_valid_multi_document_yaml() -> None:
    result = runner.invoke(app, ["k8s", "render", "cpu-dev", "--image", "me/reelserve:dev", "-n", "video"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert {d["kind"] for d in docs} == {"RayService", "RayJob", "PersistentVolumeClaim"}  # the shared store
    assert all(d["metadata"]["namespace"] == "video" for d in docs)
    assert "image: me/reelserve:dev" in result.stdout and "serveConfigV2: |" in result.stdout


def test_render_refuses_what_the_operator_would_reject() -> None:
    result = runner.invoke(app, ["k8s", "render", "gpu", "--set", "serve.vlm.autoscaling.max_replicas=9"])
    assert result.exit_code == 2
    assert "may need 9 GPUs" in result.output
    result = runner.invoke(app, ["k8s", "render", "nope"])
    assert result.exit_code == 2 and "unknown overlay 'nope'" in result.output


def test_sync_check_reports_nothing_stale() -> None:
    result = runner.invoke(app, ["k8s", "sync", "--check"])
    assert result.exit_code == 0 and result.output == ""
