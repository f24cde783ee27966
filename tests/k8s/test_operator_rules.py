"""KubeRay rules the CRD schema cannot express, checked by `reelserve k8s render` before output."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from kubernetes.utils.quantity import parse_quantity

from serve_app.kube import RenderError, RenderOptions, apply_render_options, check_operator_rules, group_gpus
from tests.k8s.conftest import OVERLAY_OPTIONS, find


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_rendered_manifests_follow_the_operator_rules(overlay: str, rendered: dict) -> None:
    assert check_operator_rules(rendered[overlay]) == []


def test_shape_of_the_gpu_service(rendered: dict) -> None:
    svc = find(rendered["gpu"], "RayService")
    cluster = svc["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"] == {"mode": "token"}
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    assert group_gpus(groups["gpu"]["template"]) == 1 and group_gpus(groups["cpu"]["template"]) == 0
    for _, group in groups.items():
        assert group["minReplicas"] < group["maxReplicas"]  # both groups autoscale
        spec = group["template"]["spec"]
        shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory"
        for container in spec["containers"]:
            assert container["resources"]["requests"] == container["resources"]["limits"]
            assert container["image"] == "reelserve:0.1.0-gpu"
    gpu_spec = groups["gpu"]["template"]["spec"]
    assert any(
        v.get("persistentVolumeClaim", {}).get("claimName") == "reelserve-model-cache" for v in gpu_spec["volumes"]
    )
    env = {e["name"]: e for e in gpu_spec["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True  # from a Secret, never a literal


def test_cpu_dev_has_no_gpu_group_and_the_cpu_image(rendered: dict) -> None:
    for doc in rendered["cpu-dev"]:
        text = yaml.safe_dump(doc)
        assert "nvidia.com/gpu" not in text and "reelserve:0.1.0-gpu" not in text
        assert "reelserve:0.1.0-cpu" in text or doc["kind"] == "PersistentVolumeClaim"


def _gpu_service(rendered: dict) -> dict[str, Any]:
    return copy.deepcopy(find(rendered["gpu"], "RayService"))


def _groups(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["rayClusterConfig"]["workerGroupSpecs"]


def test_seeded_duplicate_group_names(rendered: dict) -> None:
    doc = _gpu_service(rendered)
    _groups(doc)[1]["groupName"] = "cpu"
    problems = check_operator_rules([doc])
    assert any("duplicate groupName 'cpu'" in p for p in problems), problems


def test_seeded_min_greater_than_max(rendered: dict) -> None:
    doc = _gpu_service(rendered)
    _groups(doc)[0].update(minReplicas=5, maxReplicas=2)
    assert any("minReplicas (5) > maxReplicas (2)" in p for p in check_operator_rules([doc]))
    _groups(doc)[0].update(minReplicas=1, replicas=9, maxReplicas=8)
    assert any("replicas (9) must lie within minReplicas..maxReplicas (1..8)" in p for p in check_operator_rules([doc]))


def test_seeded_invalid_upgrade_strategy(rendered: dict) -> None:
    doc = _gpu_service(rendered)
    doc["spec"]["upgradeStrategy"]["type"] = "BlueGreen"
    assert any("upgradeStrategy.type 'BlueGreen' is not one of" in p for p in check_operator_rules([doc]))


def test_seeded_gpu_group_without_gpus(rendered: dict) -> None:
    doc = _gpu_service(rendered)
    container = _groups(doc)[1]["template"]["spec"]["containers"][0]
    for part in ("requests", "limits"):
        del container["resources"][part]["nvidia.com/gpu"]
    problems = check_operator_rules([doc])
    assert any("a GPU worker group must request nvidia.com/gpu" in p for p in problems), problems
    assert any("the VLM deployment may need 4 GPUs" in p for p in problems), problems


def test_seeded_reelserve_env_in_a_pod_would_beat_serve_config(rendered: dict) -> None:
    doc = _gpu_service(rendered)
    _groups(doc)[1]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "REELSERVE_MODEL__MODEL", "value": "other"}
    )
    assert any("REELSERVE_MODEL__MODEL would silently beat serveConfigV2" in p for p in check_operator_rules([doc]))


def test_seeded_head_with_workloads(rendered: dict) -> None:
    doc = _gpu_service(rendered)
    doc["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = "4"
    assert any('num-cpus must be "0"' in p for p in check_operator_rules([doc]))


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_every_group_sizes_its_object_store_within_dev_shm(overlay: str, rendered: dict) -> None:
    for doc in rendered[overlay]:
        if doc["kind"] not in ("RayService", "RayJob"):
            continue
        cluster = doc["spec"].get("rayClusterConfig") or doc["spec"].get("rayClusterSpec")
        if cluster is None:  # a RayJob on a shared cluster (clusterSelector)
            continue
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
            shm = next(v for v in group["template"]["spec"]["volumes"] if v["name"] == "dshm")
            store = int(group["rayStartParams"]["object-store-memory"])
            assert 256 * 1024**2 <= store <= parse_quantity(shm["emptyDir"]["sizeLimit"])


def test_seeded_object_store_missing_or_beyond_dev_shm(rendered: dict) -> None:
    doc = _gpu_service(rendered)
    groups = _groups(doc)
    groups[0]["rayStartParams"]["object-store-memory"] = str(3 * 1024**3)  # the cpu group's /dev/shm is 2Gi
    del groups[1]["rayStartParams"]["object-store-memory"]
    doc["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["object-store-memory"] = "2G"
    problems = check_operator_rules([doc])
    assert any("group cpu: object-store-memory (3221225472) must fit" in p for p in problems), problems
    assert any("group gpu: rayStartParams sets no object-store-memory" in p for p in problems), problems
    assert any("group head: object-store-memory '2G' must be a number of bytes" in p for p in problems), problems


def test_seeded_job_with_both_cluster_spec_and_selector(rendered: dict) -> None:
    job = copy.deepcopy(find(rendered["gpu"], "RayJob"))
    job["spec"]["clusterSelector"] = {"ray.io/cluster": "x"}
    problems = check_operator_rules([job])
    assert any("exactly one of rayClusterSpec and clusterSelector" in p for p in problems)
    assert any("would delete the shared cluster" in p for p in problems)


def test_render_time_overrides_are_rechecked(rendered: dict) -> None:
    too_many = RenderOptions(overlay="gpu", sets={"serve.vlm.autoscaling.max_replicas": 8})
    docs = apply_render_options(rendered["gpu"], too_many)
    assert any("may need 8 GPUs" in p for p in check_operator_rules(docs))
    with pytest.raises(RenderError, match="not valid reelserve settings"):
        apply_render_options(rendered["gpu"], RenderOptions(overlay="gpu", sets={"serve.vlm.num_gpus": -1}))
