"""`reelserve k8s`: render and apply the KubeRay manifests in `k8s/`.

    serve_config.yaml + overlay/serve-overrides.yaml ──► sync ──► committed overlay/serve-config.yaml,
                                                                  overlay/job-runtime-env.yaml
    kustomize build overlay ──► render (image, URIs, cluster, --set) ──► rules ──► YAML / apply

`sync` derives (and drift-checks) the generated files; `render` kustomizes an overlay and applies
the render-time options; `rules` are the operator's checks the CRD schemas cannot express;
`manifests` finds the cluster and pod templates in a document; `apply` is server-side apply (the
only part that needs a cluster); `cli` is the typer sub-app. `paths` and `errors` are shared by all.
"""

from serve_app.kube.cli import k8s_app
from serve_app.kube.errors import RenderError
from serve_app.kube.manifests import pod_templates, ray_cluster_spec
from serve_app.kube.paths import K8S_DIR, REPO_ROOT, SERVE_CONFIG
from serve_app.kube.render import RenderOptions, apply_render_options, render
from serve_app.kube.rules import check_operator_rules, group_gpus, parse_serve_config
from serve_app.kube.sync import generated_files, leaf_paths, overrides_as_config_patch, sync

__all__ = [
    "K8S_DIR",
    "REPO_ROOT",
    "SERVE_CONFIG",
    "RenderError",
    "RenderOptions",
    "apply_render_options",
    "check_operator_rules",
    "generated_files",
    "group_gpus",
    "k8s_app",
    "leaf_paths",
    "overrides_as_config_patch",
    "parse_serve_config",
    "pod_templates",
    "ray_cluster_spec",
    "render",
    "sync",
]
