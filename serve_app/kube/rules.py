"""The KubeRay operator's checks (and ours) that the CRDs' `openAPIV3Schema` cannot express.

`render` refuses manifests that break them, so `kubectl apply` never meets a RayService or RayJob
the operator would reject (or run wrongly): replica bounds, GPU groups, the head running no
workloads, object stores within /dev/shm, REELSERVE_* env beating serveConfigV2, VLM capacity, the
API-key Secret mount, and serveConfigV2 itself against Ray Serve's schema and our Settings.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, get_args

import yaml
from kubernetes.utils.quantity import parse_quantity
from pydantic import BaseModel

from serve_app.kube.errors import RenderError
from serve_app.kube.manifests import containers, pod_templates, ray_cluster_spec
from serve_app.kube.sync import ENV_PREFIX, validate_settings

UPGRADE_TYPES = ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")
GPU_RESOURCE = "nvidia.com/gpu"


def _quantity_gpus(resources: dict[str, Any]) -> float:
    value = ((resources.get("limits") or {}).get(GPU_RESOURCE)) or ((resources.get("requests") or {}).get(GPU_RESOURCE))
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def group_gpus(template: dict[str, Any]) -> float:
    return sum(_quantity_gpus(c.get("resources") or {}) for c in containers(template))


def _check_cluster(where: str, cluster: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
        name = group.get("groupName")
        at = f"{where}.workerGroupSpecs[{i}] ({name})"
        if name in seen:
            problems.append(f"{at}: duplicate groupName {name!r}: worker group names must be unique")
        seen.add(name)
        lo, hi = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        replicas = group.get("replicas", lo)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            problems.append(f"{at}: minReplicas ({lo}) > maxReplicas ({hi})")
        elif all(isinstance(v, int) for v in (lo, hi, replicas)) and not lo <= replicas <= hi:
            problems.append(f"{at}: replicas ({replicas}) must lie within minReplicas..maxReplicas ({lo}..{hi})")
        if "gpu" in str(name).lower() and group_gpus(group.get("template") or {}) <= 0:
            problems.append(f"{at}: a GPU worker group must request {GPU_RESOURCE} in its container resources")
    head = (cluster.get("headGroupSpec") or {}).get("rayStartParams") or {}
    if str(head.get("num-cpus")) != "0":
        problems.append(f'{where}.headGroupSpec.rayStartParams: num-cpus must be "0" (no workloads on the head)')
    for group_name, template in pod_templates(cluster):
        for container in containers(template):
            for env in container.get("env") or []:
                if str(env.get("name", "")).startswith(ENV_PREFIX):
                    problems.append(
                        f"{where} group {group_name}: env {env['name']} would silently beat serveConfigV2 "
                        "(REELSERVE_* env has precedence); put the value in serve-overrides.yaml"
                    )
    return problems


def _shm_limit(template: dict[str, Any]) -> int | None:
    """The sizeLimit (bytes) of the in-memory emptyDir the Ray container mounts at /dev/shm, if any."""
    spec = template.get("spec") or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    pod_containers = containers(template)
    for mount in (pod_containers[0].get("volumeMounts") or []) if pod_containers else []:
        empty_dir = (volumes.get(mount.get("name")) or {}).get("emptyDir") or {}
        if mount.get("mountPath") == "/dev/shm" and empty_dir.get("medium") == "Memory" and "sizeLimit" in empty_dir:
            return int(parse_quantity(empty_dir["sizeLimit"]))
    return None


def _check_object_store(where: str, cluster: dict[str, Any]) -> list[str]:
    """Every group sizes its object store, within its /dev/shm: Ray's default (30% of the pod's memory, capped by
    /dev/shm) can take the whole emptyDir, whose pages plasma never gives back."""
    groups = [("head", cluster.get("headGroupSpec") or {})] + [
        (str(g.get("groupName")), g) for g in cluster.get("workerGroupSpecs") or []
    ]
    problems = []
    for name, group in groups:
        value = (group.get("rayStartParams") or {}).get("object-store-memory")
        shm = _shm_limit(group.get("template") or {})
        if value is None:
            problems.append(f"{where} group {name}: rayStartParams sets no object-store-memory (bytes)")
        elif not str(value).isdigit():
            problems.append(f"{where} group {name}: object-store-memory {value!r} must be a number of bytes")
        elif shm is None or int(value) > shm:
            problems.append(
                f"{where} group {name}: object-store-memory ({value}) must fit the in-memory /dev/shm emptyDir's "
                f"sizeLimit ({shm if shm is not None else 'none mounted'})"
            )
    return problems


def _check_serve_capacity(where: str, serve_doc: dict[str, Any], cluster: dict[str, Any]) -> list[str]:
    settings = validate_settings(serve_doc["applications"][0].get("args") or {})
    vlm = settings.serve.vlm
    if vlm.num_gpus <= 0:
        return []
    capacity = sum(
        group_gpus(g.get("template") or {}) * g.get("maxReplicas", 0) for g in cluster.get("workerGroupSpecs") or []
    )
    need = vlm.num_gpus * vlm.autoscaling.max_replicas
    if need > capacity:
        return [
            f"{where}: the VLM deployment may need {need:g} GPUs (num_gpus {vlm.num_gpus:g} x max_replicas "
            f"{vlm.autoscaling.max_replicas}) but the worker groups provide at most {capacity:g}"
        ]
    return []


def _can_run_replicas(cluster: dict[str, Any], group_name: str) -> bool:
    """Whether Ray may place Serve replicas (the Ingress among them) in this group's pods."""
    if group_name != "head":
        return True
    head = (cluster.get("headGroupSpec") or {}).get("rayStartParams") or {}
    return str(head.get("num-cpus")) != "0"


def _secret_file_mounted(template: dict[str, Any], path: PurePosixPath) -> bool:
    """The Ray container (the first) mounts a Secret volume read-only at a folder holding `path`."""
    spec = template.get("spec") or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    pod_containers = containers(template)
    for mount in (pod_containers[0].get("volumeMounts") or []) if pod_containers else []:
        secret = (volumes.get(mount.get("name")) or {}).get("secret")
        mount_path = PurePosixPath(str(mount.get("mountPath", "")))
        if secret is None or not mount.get("readOnly") or mount.get("subPath") or path.parent != mount_path:
            continue
        items = secret.get("items")
        if items is None or any(item.get("path") == path.name for item in items):
            return True
    return False


def _check_api_keys(where: str, serve_doc: dict[str, Any], cluster: dict[str, Any]) -> list[str]:
    """auth required: every pod that may run the Ingress mounts the key Secret where api_keys_file points."""
    args = serve_doc["applications"][0].get("args") or {}
    if (args.get("security") or {}).get("api_keys") is not None:
        return [
            f"{where}: serveConfigV2 sets security.api_keys: the keys would be readable by anyone who can read "
            "the RayService; mount the Secret and set security.api_keys_file instead"
        ]
    security = validate_settings(args).security
    if security.auth == "disabled":
        return []
    if security.api_keys_file is None:
        return [
            f"{where}: security.auth is required but serveConfigV2 sets no security.api_keys_file, so the "
            "Ingress would refuse to start; set it in serve-overrides.yaml to the mounted API-key Secret"
        ]
    path = PurePosixPath(str(security.api_keys_file))
    return [
        f"{where} group {group_name}: may run the Ingress but does not mount a Secret read-only at {path.parent} "
        f"holding {path.name} (security.api_keys_file)"
        for group_name, template in pod_templates(cluster)
        if _can_run_replicas(cluster, group_name) and not _secret_file_mounted(template, path)
    ]


def _volume_claim_at(template: dict[str, Any], path: PurePosixPath) -> bool:
    """The Ray container mounts a PersistentVolumeClaim at `path` or a folder above it."""
    spec = template.get("spec") or {}
    claims = {v.get("name") for v in spec.get("volumes") or [] if v.get("persistentVolumeClaim")}
    pod_containers = containers(template)
    for mount in (pod_containers[0].get("volumeMounts") or []) if pod_containers else []:
        mount_path = PurePosixPath(str(mount.get("mountPath", "")))
        if mount.get("name") in claims and (path == mount_path or mount_path in path.parents):
            return True
    return False


def _check_shared_store(where: str, serve_doc: dict[str, Any], cluster: dict[str, Any]) -> list[str]:
    """Several pods need one store: replicas hand media and job records to each other as store URIs."""
    if not cluster.get("workerGroupSpecs"):
        return []
    store = validate_settings(serve_doc["applications"][0].get("args") or {}).jobs.store_uri
    if store is None:
        return [
            f"{where}: a multi-node cluster needs a shared store, but serveConfigV2 sets no jobs.store_uri (each "
            "pod would keep its own job store and uploads); set an object-store URI or an RWX volume's mount path "
            "in serve-overrides.yaml"
        ]
    if "://" in store and not store.startswith("file://"):
        return []  # an object store: every pod reaches the same one
    path = PurePosixPath(store.removeprefix("file://"))
    return [
        f"{where} group {group_name}: may run replicas but does not mount a PersistentVolumeClaim at {path} "
        "(jobs.store_uri): a node-local folder is not a shared store"
        for group_name, template in pod_templates(cluster)
        if _can_run_replicas(cluster, group_name) and not _volume_claim_at(template, path)
    ]


def check_operator_rules(docs: list[dict[str, Any]]) -> list[str]:
    """KubeRay's own checks (and ours) that `openAPIV3Schema` cannot express; [] when all hold."""
    problems: list[str] = []
    for doc in docs:
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        where = f"{kind}/{name}"
        spec = doc.get("spec") or {}
        cluster = ray_cluster_spec(doc)
        if cluster:
            problems += _check_cluster(where, cluster)
            problems += _check_object_store(where, cluster)
        if kind == "RayService":
            strategy = (spec.get("upgradeStrategy") or {}).get("type")
            if strategy is not None and strategy not in UPGRADE_TYPES:
                problems.append(f"{where}: upgradeStrategy.type {strategy!r} is not one of {', '.join(UPGRADE_TYPES)}")
            try:
                serve_doc = parse_serve_config(spec.get("serveConfigV2", ""))
            except RenderError as exc:
                problems.append(f"{where}: {exc}")
            else:
                problems += _check_serve_capacity(where, serve_doc, cluster or {})
                problems += _check_api_keys(where, serve_doc, cluster or {})
                problems += _check_shared_store(where, serve_doc, cluster or {})
        if kind == "RayJob":
            has_selector, has_spec = bool(spec.get("clusterSelector")), bool(spec.get("rayClusterSpec"))
            if has_selector == has_spec:
                problems.append(f"{where}: set exactly one of rayClusterSpec and clusterSelector")
            if has_selector and (spec.get("shutdownAfterJobFinishes") or spec.get("ttlSecondsAfterFinished")):
                problems.append(f"{where}: shutdownAfterJobFinishes/TTL would delete the shared cluster")
            if spec.get("ttlSecondsAfterFinished") and not spec.get("shutdownAfterJobFinishes"):
                problems.append(f"{where}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
            try:
                yaml.safe_load(spec.get("runtimeEnvYAML") or "")
            except yaml.YAMLError as exc:
                problems.append(f"{where}: runtimeEnvYAML is not YAML: {exc}")
    return problems


def parse_serve_config(text: str) -> dict[str, Any]:
    """serveConfigV2 through Ray Serve's own schema (unknown keys are errors there) and our Settings."""
    from ray.serve.schema import ServeDeploySchema

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RenderError(f"serveConfigV2 is not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RenderError(f"serveConfigV2 must be a mapping, got {type(doc).__name__}")
    try:
        ServeDeploySchema.model_validate(doc)
    except ValueError as exc:
        raise RenderError(f"serveConfigV2 does not match Ray Serve's schema: {exc}") from exc
    # Serve's schema ignores unknown keys; a misspelt option must not vanish silently.
    unknown = _unknown_keys(ServeDeploySchema, doc, "")
    if unknown:
        raise RenderError(f"serveConfigV2 does not match Ray Serve's schema: unknown keys {unknown}")
    for app in doc.get("applications") or []:
        validate_settings(app.get("args") or {})
    return doc


def _unknown_keys(model: type[BaseModel], value: Any, path: str) -> list[str]:
    """Keys of `value` that no field (or alias) of the pydantic `model` names, recursively."""
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()} | dict(model.model_fields)
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            out.append(where)
            continue
        for sub in _model_types(fields[key].annotation):
            items = item if isinstance(item, list) else [item]
            for i, element in enumerate(items):
                out += _unknown_keys(sub, element, f"{where}[{i}]" if isinstance(item, list) else where)
    return out


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _model_types(arg)]
