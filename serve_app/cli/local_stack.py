"""The embedded local stack: a local Ray cluster + the Serve app from serve_config.yaml.

Used by `reelserve analyze` without `--server`, `reelserve serve`, the demo and
the integration tests, so all of them run the same graph as production.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from serve_app.config import Settings

logger = logging.getLogger(__name__)

# Serve's proxy, controller and replicas hold ~1.75 logical CPUs; Ray Data
# tasks need room too. 4 logical CPUs on a 2-core box avoids the deadlock in
# the Ray notes (ray-project/ray#44687). Work is bounded by real cores anyway.
LOCAL_NUM_CPUS = 4
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def metrics_url() -> str:
    """Where the Ray node of this process exports its Prometheus metrics (after `ray.init`)."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    node = next(n for n in ray.nodes() if n["NodeID"] == here)
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


@contextmanager
def local_stack(settings: Settings, *, port: int | None = None, app_name: str = "reelserve") -> Iterator[str]:
    """Start Ray + the Serve app on 127.0.0.1, yield its base URL, then stop both."""
    import ray
    from ray import serve

    from serve_app.app import build_graph

    if settings.security.auth == "disabled" and settings.serve.host not in LOOPBACK_HOSTS:
        # Every embedded stack binds here: no path may serve without keys beyond this machine.
        raise ValueError(
            f"refusing to serve without auth on {settings.serve.host}: bind 127.0.0.1, or set "
            "REELSERVE_SECURITY__AUTH=required and REELSERVE_API_KEYS"
        )
    port = settings.serve.port if port is None else port
    # Replicas must find the same temp dir as this process (Ray notes: TMPDIR).
    os.environ.setdefault("VLLM_CACHE_ROOT", str(settings.serve.store_dir.parent / "vllm-cache"))
    ray.init(
        address="local",
        num_cpus=LOCAL_NUM_CPUS,
        object_store_memory=settings.serve.object_store_bytes,  # the reason is at the setting
        include_dashboard=False,
        log_to_driver=False,
        _metrics_export_port=settings.serve.metrics_export_port,
    )
    logger.info("Prometheus metrics at %s", metrics_url())
    try:
        # The controller's and proxies' logs in the deployments' encoding and level too.
        serve.start(http_options={"host": settings.serve.host, "port": port}, logging_config=settings.logging_config())
        serve.run(build_graph(settings), name=app_name, route_prefix="/")
        yield f"http://{settings.serve.host}:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
