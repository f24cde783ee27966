"""One real local Ray cluster + one real Serve app (real vLLM CPU engine, tiny model) per test session.

The app is built from the repository's serve_config.yaml exactly as users run
it, with only the port and the media store moved to test-owned places, and
security set for tests: auth on with a test key (the `http` client sends it),
and URL fetching pointed at test host names through the injectable resolver.

Nothing may leave loopback: the test process runs under serve_app.netguard
(any connection or DNS lookup off the machine fails the test), and so does
the ingress replica, the only process that fetches URLs
(`security.loopback_only_egress`). The resolver maps `media.test` to the
loopback media server (allowlisted); the other test hosts map to private and
metadata addresses that must be refused before any connection is attempted.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve_app.config import Settings
from serve_app.local_stack import ServeConfig, local_stack
from serve_app.netguard import install_loopback_guard
from tests.media_server import serve_folder

pytestmark = pytest.mark.integration

TEST_API_KEY = "reelserve-integration-test-key"
MEDIA_HOST = "media.test"  # the loopback media server, allowlisted
# Refused by policy before connecting; the ingress replica's guard would stop a connection anyway.
PRIVATE_TEST_HOSTS = {
    "ten.test": "10.0.0.1",
    "oneseventwo.test": "172.16.0.1",
    "oneninetwo.test": "192.168.0.1",
    "metadata.test": "169.254.169.254",
    "cgnat.test": "100.64.0.1",
    "loopback.test": "127.0.0.1",  # loopback, but not allowlisted
}

_blocked: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _loopback_only_session() -> None:
    """Installed before Ray starts; stays for the session (the guard is process-wide)."""
    install_loopback_guard(_blocked.append)


@pytest.fixture(autouse=True)
def _no_egress() -> Iterator[None]:
    before = len(_blocked)
    yield
    assert _blocked[before:] == [], f"the test process tried to leave loopback: {_blocked[before:]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    store = tmp_path_factory.mktemp("store")
    # Tight limits so over-limit inputs are cheap to make; everything else as in serve_config.yaml.
    overrides = {
        # Small ingress queue and job capacity so overload is reachable with a few dozen requests.
        "serve": {
            "store_dir": str(store),
            "port": free_port(),
            "ingress": {"max_ongoing_requests": 8, "max_queued_requests": 8},
        },
        "jobs": {"max_running": 2, "max_queued": 2},
        "video": {"max_duration_s": 300, "max_upload_bytes": 20 * 1024**2},
        "security": {
            "auth": "required",
            "api_keys": TEST_API_KEY,
            "url_allow_hosts": [MEDIA_HOST],
            "url_resolver_overrides": {MEDIA_HOST: "127.0.0.1", **PRIVATE_TEST_HOSTS},
            "loopback_only_egress": True,
        },
    }
    return ServeConfig.load(None).settings(overrides)


@pytest.fixture(scope="session")
def server(settings: Settings) -> Iterator[str]:
    """Base URL of the running app; the cluster and app stop at the end of the session."""
    with local_stack(settings) as url:
        yield url


@pytest.fixture(scope="session")
def api_key(settings: Settings) -> str:
    """A key the app accepts (REELSERVE_API_KEYS in the environment would beat the test key)."""
    assert settings.security.api_keys is not None
    return settings.security.api_keys.get_secret_value().split(",")[0].strip()


@pytest.fixture(scope="session")
def http(server: str, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=600, headers={"Authorization": f"Bearer {api_key}"}) as client:
        yield client


@pytest.fixture(scope="session")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder: (base URL via `media.test`, folder)."""
    root = tmp_path_factory.mktemp("www")
    with serve_folder(root) as port:
        yield f"http://{MEDIA_HOST}:{port}", root
