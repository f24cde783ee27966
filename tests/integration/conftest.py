"""One real local Ray cluster + one real Serve app (real vLLM CPU engine, tiny model) per test session.

The app is built from the repository's serve_config.yaml exactly as users run
it, with only the port and the media store moved to test-owned places.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from http import server as http_server
from pathlib import Path

import httpx
import pytest

from serve_app.config import Settings
from serve_app.local_stack import ServeConfig, local_stack

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    store = tmp_path_factory.mktemp("store")
    # Tight limits so over-limit inputs are cheap to make; everything else as in serve_config.yaml.
    overrides = {
        "serve": {"store_dir": str(store), "port": free_port()},
        "video": {"max_duration_s": 300, "max_upload_bytes": 20 * 1024**2},
    }
    return ServeConfig.load(None).settings(overrides)


@pytest.fixture(scope="session")
def server(settings: Settings) -> Iterator[str]:
    """Base URL of the running app; the cluster and app stop at the end of the session."""
    with local_stack(settings) as url:
        yield url


@pytest.fixture(scope="session")
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=600) as client:
        yield client


class _QuietHandler(http_server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder: (base URL, folder)."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http_server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
