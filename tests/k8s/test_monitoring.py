"""k8s/monitoring: the PodMonitor scrapes the port KubeRay exports metrics on, and the Grafana dashboard
queries only metrics the code exports (reelserve's, with Ray's `ray_` namespace, and vLLM's)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import yaml
from ray.serve.metrics import Counter, Histogram

from serve_app.kube import REPO_ROOT
from serve_app.observability import metrics

MONITORING = REPO_ROOT / "k8s" / "monitoring"
QUERIED = re.compile(r"\bray_(?:reelserve|vllm)_[a-z_]+")


def exported_reelserve_names() -> set[str]:
    """What Prometheus sees of each reelserve metric: `ray_` + its name; a histogram's series suffixes."""
    names = set()
    for field in dataclasses.fields(metrics._metrics()):  # the one set of definitions
        metric = getattr(metrics._metrics(), field.name)
        name = "ray_" + metric.info["name"]
        suffixes = ("_bucket", "_sum", "_count") if isinstance(metric, Histogram) else ("",)
        names |= {name + s for s in suffixes}
        if isinstance(metric, Counter):
            assert name.endswith("_total"), f"{name}: a counter's name ends in _total"
    return names


def exported_vllm_names() -> set[str]:
    """vLLM's metric names as its Ray stat logger exports them (`vllm:x` -> `ray_vllm_x`), read from the
    installed vLLM's source (importing it would load torch)."""
    spec = importlib.util.find_spec("vllm")
    assert spec is not None and spec.origin is not None
    loggers = Path(spec.origin).parent / "v1" / "metrics" / "loggers.py"
    base = {"ray_vllm_" + n for n in re.findall(r'name="vllm:([a-z_]+)"', loggers.read_text())}
    return base | {n + s for n in base for s in ("_bucket", "_sum", "_count", "_total")}


def test_podmonitor_scrapes_the_metrics_port_of_every_ray_pod() -> None:
    doc = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert doc["spec"]["selector"]["matchLabels"] == {"ray.io/is-ray-node": "yes"}
    [endpoint] = doc["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


def test_podmonitor_is_outside_the_kustomizations() -> None:
    # Its CRD is the Prometheus Operator's: the rendered overlays must stay within what the tests validate.
    for kustomization in (REPO_ROOT / "k8s").rglob("kustomization.yaml"):
        assert "podmonitor" not in kustomization.read_text().lower(), kustomization


def test_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = {name for expr in exprs for name in QUERIED.findall(expr)}
    reelserve = exported_reelserve_names()
    unknown = queried - reelserve - exported_vllm_names()
    assert not unknown, f"the dashboard queries metrics nothing exports: {sorted(unknown)}"
    # Every reelserve metric is on the dashboard (a histogram through its buckets).
    shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in queried}
    assert {re.sub(r"_(bucket|sum|count)$", "", n) for n in reelserve} <= shown
    assert any(n.startswith("ray_vllm_time_to_first_token_seconds") for n in queried)
    assert "ray_vllm_kv_cache_usage_perc" in queried
