"""`reelserve k8s render|apply|sync`: the typer sub-app; the work is in render, apply and sync."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serve_app.kube.apply import active_cluster_name, apply_documents
from serve_app.kube.errors import RenderError
from serve_app.kube.paths import OVERLAYS, REPO_ROOT
from serve_app.kube.render import RenderOptions, dump, parse_set, render
from serve_app.kube.sync import sync

k8s_app = typer.Typer(no_args_is_help=True, help="Render and apply the KubeRay manifests in k8s/.")

OverlayArg = Annotated[str, typer.Argument(help=f"Overlay: {', '.join(OVERLAYS)}.")]
ImageOpt = Annotated[str | None, typer.Option(help="Container image for every Ray pod (registry/name:tag).")]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace of every object.")]
InputOpt = Annotated[str | None, typer.Option("--input", help="RayJob: archive input URI.")]
OutputOpt = Annotated[str | None, typer.Option("--output", help="RayJob: archive output URI.")]
ClusterOpt = Annotated[str | None, typer.Option(help="job-shared: the RayCluster to run on.")]
ComponentOpt = Annotated[str, typer.Option(help="all, service (RayService + PVC) or job (RayJob).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Settings override, dotted: --set model.model=Qwen/Qwen3-VL-2B-Instruct (repeatable)."),
]


def _options(
    overlay: str,
    image: str | None,
    namespace: str | None,
    input_uri: str | None,
    output_uri: str | None,
    cluster: str | None,
    component: str,
    sets: list[str] | None,
) -> RenderOptions:
    return RenderOptions(
        overlay=overlay,
        image=image,
        namespace=namespace,
        input_uri=input_uri,
        output_uri=output_uri,
        cluster=cluster,
        component=component,
        sets=parse_set(sets or []),
    )


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@k8s_app.command("render")
def render_cmd(
    overlay: OverlayArg = "gpu",
    image: ImageOpt = None,
    namespace: NamespaceOpt = None,
    input_uri: InputOpt = None,
    output_uri: OutputOpt = None,
    cluster: ClusterOpt = None,
    component: ComponentOpt = "all",
    sets: SetOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--out", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the kustomized manifests of an overlay with the given overrides (no cluster needed)."""
    try:
        opts = _options(overlay, image, namespace, input_uri, output_uri, cluster, component, sets)
        text = dump(render(opts))
    except RenderError as exc:
        raise _fail(exc) from None
    if output:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


@k8s_app.command("apply")
def apply_cmd(
    overlay: OverlayArg = "gpu",
    image: ImageOpt = None,
    namespace: NamespaceOpt = None,
    input_uri: InputOpt = None,
    output_uri: OutputOpt = None,
    cluster: ClusterOpt = None,
    component: ComponentOpt = "all",
    sets: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run/--no-dry-run", help="Server-side dry run.")] = False,
    field_validation: Annotated[str, typer.Option(help="Strict, Warn or Ignore (the API server's).")] = "Strict",
    force_conflicts: Annotated[bool, typer.Option(help="Take over fields owned by another manager.")] = False,
    context: Annotated[str | None, typer.Option(help="kubeconfig context (default: the current one).")] = None,
    rayservice: Annotated[str, typer.Option(help="job-shared without --cluster: use this RayService's.")] = "reelserve",
) -> None:
    """Server-side apply the rendered manifests to the current kubeconfig context."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from kubernetes.dynamic.exceptions import DynamicApiError

    try:
        if overlay == "job-shared" and not cluster:
            cluster = active_cluster_name(rayservice, namespace, context)
        opts = _options(overlay, image, namespace, input_uri, output_uri, cluster, component, sets)
        lines = apply_documents(
            render(opts),
            dry_run=dry_run,
            field_validation=field_validation,
            force_conflicts=force_conflicts,
            context=context,
        )
    except (RenderError, ConfigException, ApiException, DynamicApiError) as exc:
        raise _fail(exc) from None
    for line in lines:
        typer.echo(line)


@k8s_app.command("sync")
def sync_cmd(
    check: Annotated[bool, typer.Option(help="Only report stale generated files (exit 1 if any).")] = False,
) -> None:
    """Regenerate each overlay's serve-config.yaml and job-runtime-env.yaml from serve_config.yaml."""
    try:
        stale = sync(check=check)
    except RenderError as exc:
        raise _fail(exc) from None
    for path in stale:
        typer.echo(f"{'stale' if check else 'wrote'} {path.relative_to(REPO_ROOT)}")
    if check and stale:
        raise typer.Exit(1)
