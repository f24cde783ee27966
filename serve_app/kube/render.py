"""`reelserve k8s render`: kustomize an overlay, then apply what a user may change at render time.

    kustomize build overlay ──► apply_render_options (image, URIs, cluster, --set) ──► operator rules ──► YAML

Pure (files in, documents out) apart from running kustomize; tested without a cluster.
"""

from __future__ import annotations

import copy
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serve_app.config import deep_merge
from serve_app.kube.errors import RenderError
from serve_app.kube.manifests import containers, pod_templates, ray_cluster_spec
from serve_app.kube.paths import K8S_DIR, OVERLAYS
from serve_app.kube.rules import check_operator_rules
from serve_app.kube.sync import settings_env, validate_settings

CLUSTER_SELECTOR_KEY = "ray.io/cluster"


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """`kustomize build` (or `kubectl kustomize`, which embeds it) of one overlay."""
    if kustomize := shutil.which("kustomize"):
        cmd = [kustomize, "build", str(directory)]
    elif kubectl := shutil.which("kubectl"):
        cmd = [kubectl, "kustomize", str(directory)]
    else:
        raise RenderError("rendering needs `kubectl` (or `kustomize`) on PATH")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RenderError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@dataclass
class RenderOptions:
    """What a user may change at render time; everything else is in the overlay."""

    overlay: str = "gpu"
    image: str | None = None
    namespace: str | None = None
    input_uri: str | None = None
    output_uri: str | None = None
    cluster: str | None = None
    component: str = "all"  # all | service | job
    sets: dict[str, Any] = field(default_factory=dict)  # dotted settings path -> value


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """`model.model=X` style settings overrides; values are YAML (so `4`, `null`, `true` are typed)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RenderError(f"--set expects KEY=VALUE with a dotted settings path, got {item!r}")
        out[key] = yaml.safe_load(raw)
    return out


def _nest(sets: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in sets.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _set_entrypoint_uris(entrypoint: str, input_uri: str | None, output_uri: str | None) -> str:
    argv = shlex.split(entrypoint)
    for flag, value in (("--input", input_uri), ("--output", output_uri)):
        if value is None:
            continue
        if flag not in argv:
            raise RenderError(f"RayJob entrypoint has no {flag}: {entrypoint!r}")
        argv[argv.index(flag) + 1] = value
    return shlex.join(argv)


def apply_render_options(docs: list[dict[str, Any]], opts: RenderOptions) -> list[dict[str, Any]]:
    """Render-time overrides on kustomize's output (a copy); never touches the files."""
    docs = copy.deepcopy(docs)
    if opts.component == "service":
        docs = [d for d in docs if d.get("kind") != "RayJob"]
    elif opts.component == "job":
        docs = [d for d in docs if d.get("kind") == "RayJob"]
    elif opts.component != "all":
        raise RenderError(f"--component must be all, service or job, not {opts.component!r}")
    extra_args = _nest(opts.sets)
    for doc in docs:
        if opts.namespace:
            doc.setdefault("metadata", {})["namespace"] = opts.namespace
        cluster = ray_cluster_spec(doc)
        if opts.image and cluster:
            for _, template in pod_templates(cluster):
                for container in containers(template):
                    container["image"] = opts.image
        spec = doc.get("spec") or {}
        if doc.get("kind") == "RayService" and extra_args:
            serve_doc = yaml.safe_load(spec["serveConfigV2"])
            app = serve_doc["applications"][0]
            app["args"] = deep_merge(app.get("args") or {}, extra_args)
            validate_settings(app["args"])
            spec["serveConfigV2"] = yaml.safe_dump(serve_doc, sort_keys=False)
        if doc.get("kind") == "RayJob":
            spec["entrypoint"] = _set_entrypoint_uris(spec["entrypoint"], opts.input_uri, opts.output_uri)
            if extra_args and "rayClusterSpec" in spec:
                runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "") or {}
                runtime_env.setdefault("env_vars", {}).update(settings_env(extra_args))
                spec["runtimeEnvYAML"] = yaml.safe_dump(runtime_env, sort_keys=False)
            if "clusterSelector" in spec:
                if not opts.cluster:
                    raise RenderError(
                        "the job-shared overlay needs --cluster NAME: the RayService's current RayCluster, "
                        "kubectl get rayservice reelserve -o jsonpath='{.status.activeServiceStatus.rayClusterName}'"
                    )
                spec["clusterSelector"] = {CLUSTER_SELECTOR_KEY: opts.cluster}
    return docs


def render(opts: RenderOptions, k8s_dir: Path = K8S_DIR) -> list[dict[str, Any]]:
    """Kustomize the overlay, apply the render-time options, refuse what the operator would reject."""
    if opts.overlay not in OVERLAYS:
        raise RenderError(f"unknown overlay {opts.overlay!r}; choose one of {', '.join(OVERLAYS)}")
    docs = apply_render_options(kustomize_build(k8s_dir / "overlays" / opts.overlay), opts)
    problems = check_operator_rules(docs)
    if problems:
        raise RenderError("the rendered manifests break KubeRay rules:\n  " + "\n  ".join(problems))
    return docs


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (serveConfigV2, runtimeEnvYAML) as `|` blocks, readable like kustomize's output."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockDumper.add_representer(str, _str)


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_BlockDumper, sort_keys=False)
