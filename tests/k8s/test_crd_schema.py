"""Every rendered custom resource validates against the real KubeRay v1.7.0 CRD schemas, strictly;
seeded defects show the validator rejects what the API server would."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s import structural
from tests.k8s.conftest import OVERLAY_OPTIONS, find


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_every_custom_resource_validates_strictly(overlay: str, rendered: dict, crds: dict) -> None:
    docs = [d for d in rendered[overlay] if d["apiVersion"].startswith("ray.io/")]
    assert docs, f"{overlay} renders no KubeRay resources"
    for doc in docs:
        _, errors = structural.validate(doc, crds)
        assert errors == [], f"{overlay} {doc['kind']}/{doc['metadata']['name']}:\n" + "\n".join(errors)


def test_crd_defaults_are_applied(rendered: dict, crds: dict) -> None:
    stored, errors = structural.validate(find(rendered["gpu"], "RayJob"), crds)
    assert errors == []
    # Not in our manifest, filled in by the CRD's defaults the way the API server stores it.
    assert stored["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["numOfHosts"] == 1
    assert stored["spec"]["backoffLimit"] == 2  # ours wins over the default 0
    stored, _ = structural.validate(find(rendered["job-shared"], "RayJob"), crds)
    assert stored["spec"]["ttlSecondsAfterFinished"] == 0  # default, so the shared cluster is never reaped


def _service(rendered: dict) -> dict[str, Any]:
    return copy.deepcopy(find(rendered["gpu"], "RayService"))


def _errors(doc: dict[str, Any], crds: dict) -> str:
    _, errors = structural.validate(doc, crds)
    return "\n".join(errors)


def test_seeded_misspelt_field_is_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    group = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    group["maxReplica"] = group.pop("maxReplicas")
    errors = _errors(doc, crds)
    assert 'unknown field "spec.rayClusterConfig.workerGroupSpecs[0].maxReplica"' in errors
    assert "spec.rayClusterConfig.workerGroupSpecs[0].maxReplicas" not in errors  # it has a default, not required


def test_seeded_unknown_field_inside_the_pod_template_is_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    container = doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["resource"] = container.pop("resources")
    assert 'containers[0].resource"' in _errors(doc, crds)


def test_seeded_string_where_an_integer_belongs_is_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]["maxReplicas"] = "4"
    assert "workerGroupSpecs[1].maxReplicas: Invalid value: '4': must be of type integer" in _errors(doc, crds)


def test_seeded_int32_overflow_is_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = 2**31
    assert "maxReplicas: Invalid value: 2147483648: out of range for int32" in _errors(doc, crds)


def test_seeded_bad_quantity_is_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    head = doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["resources"]["limits"]["memory"] = "8 GB"
    errors = _errors(doc, crds)
    assert "resources.limits.memory: Invalid value: '8 GB': should match" in errors


def test_seeded_bad_enum_and_missing_required_are_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    doc["spec"]["rayClusterConfig"]["authOptions"]["mode"] = "password"
    del doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["groupName"]
    errors = _errors(doc, crds)
    assert "authOptions.mode: Unsupported value: 'password'" in errors
    assert "workerGroupSpecs[0].groupName: Required value" in errors


def test_seeded_duplicate_list_map_key_is_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    ports = doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    ports.append({"containerPort": 8265, "name": "dashboard-again"})
    assert "ports[4]: Duplicate value" in _errors(doc, crds)


def test_seeded_cel_rule_violations_are_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    doc["spec"]["managedBy"] = "someone-else"
    assert "spec.managedBy: Invalid value: the managedBy field value must be either" in _errors(doc, crds)

    job = copy.deepcopy(find(rendered["gpu"], "RayJob"))
    job["spec"]["deletionStrategy"] = {
        "deletionRules": [
            {"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED", "jobDeploymentStatus": "Failed"}}
        ]
    }
    errors = _errors(job, crds)
    assert "JobStatus and JobDeploymentStatus cannot be used together" in errors
    job["spec"]["deletionStrategy"] = {"onSuccess": {"policy": "DeleteCluster"}}
    assert "deletionStrategy requires either BOTH onSuccess and onFailure" in _errors(job, crds)


def test_seeded_bad_object_name_is_rejected(rendered: dict, crds: dict) -> None:
    doc = _service(rendered)
    doc["metadata"]["name"] = "ReelServe_1"
    assert "metadata.name: Invalid value: 'ReelServe_1'" in _errors(doc, crds)
