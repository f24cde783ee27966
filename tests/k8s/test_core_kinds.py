"""Core Kubernetes kinds, and every Ray pod template, validate strictly with kubernetes-validate."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from serve_app.kube import pod_templates, ray_cluster_spec
from tests.k8s import structural
from tests.k8s.conftest import OVERLAY_OPTIONS, find

K8S_VERSION = latest_version()


class InvalidCoreObject(ValueError):
    """A core object the API server would reject (schema or quantity syntax)."""


def _strict(doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise InvalidCoreObject(str(exc)) from exc
    # The published core schemas give Quantity no pattern; the API server parses it, so do we.
    errors = structural.core_quantity_errors(doc)
    if errors:
        raise InvalidCoreObject("; ".join(errors))


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_core_kinds_validate_strictly(overlay: str, rendered: dict) -> None:
    core = [d for d in rendered[overlay] if not d["apiVersion"].startswith("ray.io/")]
    for doc in core:
        _strict(doc)
    claims = {d["metadata"]["name"] for d in core if d["kind"] == "PersistentVolumeClaim"}
    assert {d["kind"] for d in core} <= {"PersistentVolumeClaim"}
    # The service profiles have the shared store, gpu also the model cache; job-shared uses the service's.
    expected = {"gpu": {"reelserve-store", "reelserve-model-cache"}, "cpu-dev": {"reelserve-store"}}
    assert claims == expected.get(overlay, set())


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_pod_templates_validate_as_core_pod_templates(overlay: str, rendered: dict) -> None:
    # The CRD embeds a PodTemplateSpec; check it against the core schema of the current Kubernetes too.
    for doc in rendered[overlay]:
        cluster = ray_cluster_spec(doc)
        for group, template in pod_templates(cluster or {}):
            pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": group}}
            _strict({**pod_template, "template": template})


def test_seeded_misspelt_core_field_is_rejected(rendered: dict) -> None:
    pvc = copy.deepcopy(find(rendered["gpu"], "PersistentVolumeClaim"))
    pvc["spec"]["accesModes"] = pvc["spec"].pop("accessModes")
    with pytest.raises(InvalidCoreObject, match="accesModes"):
        _strict(pvc)


def test_seeded_bad_core_quantity_is_rejected(rendered: dict) -> None:
    pvc = copy.deepcopy(find(rendered["gpu"], "PersistentVolumeClaim"))
    pvc["spec"]["resources"]["requests"]["storage"] = "100 gigs"
    with pytest.raises(InvalidCoreObject, match="spec.resources.requests.storage: Invalid value: '100 gigs'"):
        _strict(pvc)
