"""Where the Ray cluster and its pod templates are in a rendered RayService / RayJob document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def ray_cluster_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec") or {}
    return spec.get("rayClusterConfig") if doc.get("kind") == "RayService" else spec.get("rayClusterSpec")


def pod_templates(cluster: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    yield "head", (cluster.get("headGroupSpec") or {}).get("template") or {}
    for group in cluster.get("workerGroupSpecs") or []:
        yield str(group.get("groupName")), group.get("template") or {}


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    return ((template.get("spec") or {}).get("containers")) or []
