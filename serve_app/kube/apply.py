"""`reelserve k8s apply`: server-side apply of rendered documents with the official kubernetes client.

The only part of `serve_app.kube` that needs a cluster (and a kubeconfig); the client is imported
only when applying.
"""

from __future__ import annotations

from typing import Any

from serve_app.kube.errors import RenderError


def apply_documents(
    docs: list[dict[str, Any]],
    *,
    dry_run: bool,
    field_validation: str = "Strict",
    force_conflicts: bool = False,
    field_manager: str = "reelserve",
    context: str | None = None,
) -> list[str]:
    """Server-side apply every document with the official client; returns one line per object."""
    from kubernetes import config as kube_config
    from kubernetes.client import ApiClient
    from kubernetes.dynamic import DynamicClient

    api = DynamicClient(ApiClient(kube_config.new_client_from_config(context=context).configuration))
    query = [("fieldValidation", field_validation)]
    lines = []
    for doc in docs:
        resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = (doc.get("metadata") or {}).get("namespace") or _current_namespace(context)
        api.server_side_apply(
            resource,
            body=doc,
            namespace=namespace if resource.namespaced else None,
            field_manager=field_manager,
            force_conflicts=force_conflicts or None,
            dry_run="All" if dry_run else None,
            query_params=query,
        )
        lines.append(f"{doc['kind']}/{doc['metadata']['name']} applied{' (server dry run)' if dry_run else ''}")
    return lines


def _current_namespace(context: str | None) -> str:
    from kubernetes import config as kube_config

    contexts, active = kube_config.list_kube_config_contexts()
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    return (chosen.get("context") or {}).get("namespace") or "default"


def active_cluster_name(rayservice: str, namespace: str | None, context: str | None) -> str:
    """The RayCluster currently serving a RayService (what job-shared's clusterSelector must name)."""
    from kubernetes import config as kube_config
    from kubernetes.client import CustomObjectsApi

    api = CustomObjectsApi(kube_config.new_client_from_config(context=context))
    obj = api.get_namespaced_custom_object(
        "ray.io", "v1", namespace or _current_namespace(context), "rayservices", rayservice
    )
    name = ((obj.get("status") or {}).get("activeServiceStatus") or {}).get("rayClusterName")
    if not name:
        raise RenderError(f"RayService {rayservice} has no active RayCluster yet; wait until it is ready")
    return str(name)
