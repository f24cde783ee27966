"""One real local Ray cluster + one real Serve app (real vLLM CPU engine, tiny model) per test session.

The app is built from the repository's serve_config.yaml exactly as users run
it, with only the port and the media store moved to test-owned places, and
security set for tests: auth on with a test key (the `http` client sends it),
and URL fetching pointed at test host names through the injectable resolver.

Nothing may leave loopback: the test process runs under serve_app.devtools.netguard
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

from serve_app.cli.local_stack import local_stack
from serve_app.config import ServeConfig, Settings
from serve_app.devtools.netguard import install_loopback_guard
from serve_app.devtools.synthetic import write_audio_only, write_screen_share
from tests.conftest import ScreenClip, VideoFactory
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
        # Small admission limits and job capacity so overload is reachable with a few dozen requests (the
        # fairness test runs five analyses at once).
        "serve": {
            "store_dir": str(store),
            "port": free_port(),
            "max_analyses": 6,
            "max_intakes": 8,
            # Scraped by test_analyze_http.py's metrics test.
            "metrics_export_port": free_port(),
        },
        # The encoding a log collector reads; test_analyze_http.py parses every line.
        "log_encoding": "JSON",
        # Keep-alives every 2 s, so the event-stream tests see them pass the Serve proxy within seconds.
        "jobs": {"max_running": 2, "max_queued": 2, "events_keepalive_s": 2},
        "video": {"max_duration_s": 300, "max_upload_bytes": 20 * 1024**2},
        # An archive output folder the search covers besides the job store (tests/integration/test_search.py).
        "search": {"archive_uris": [str(tmp_path_factory.mktemp("archive-out"))]},
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


# Generated clips, written once per session through tests/conftest.py's `make_video` (the paths are
# shared: copy a clip before changing it or putting it in a folder of its own). Named by what they are;
# the tests that need each one say why it looks the way it does.


@pytest.fixture(scope="session")
def clip_3s_mp4(make_video: VideoFactory) -> Path:
    """3 s of 10 fps H.264, 160x96: the cheapest clip that runs through the app (one chunk)."""
    return make_video("clip_3s.mp4", duration_s=3.0, fps=10, width=160, height=96).path


@pytest.fixture(scope="session")
def clip_4s_mp4(make_video: VideoFactory) -> Path:
    """4 s of 10 fps H.264, 320x240 (one chunk)."""
    return make_video("clip_4s.mp4", duration_s=4.0, fps=10, width=320, height=240).path


@pytest.fixture(scope="session")
def small_4s_mp4(make_video: VideoFactory) -> Path:
    """4 s of 5 fps H.264, 160x128 (one chunk): cheap enough to send by the dozen."""
    return make_video("small_4s.mp4", duration_s=4.0, fps=5, width=160, height=128).path


@pytest.fixture(scope="session")
def clip_6s_webm(make_video: VideoFactory) -> Path:
    """6 s of 10 fps VP8 in WebM, 320x240 (one chunk)."""
    return make_video("clip_6s.webm", duration_s=6.0, fps=10, width=320, height=240).path


@pytest.fixture(scope="session")
def clip_8s_mp4(make_video: VideoFactory) -> Path:
    """8 s of 10 fps H.264, 320x240 (one chunk)."""
    return make_video("clip_8s.mp4", duration_s=8.0, fps=10, width=320, height=240).path


@pytest.fixture(scope="session")
def clip_9s_mp4(make_video: VideoFactory) -> Path:
    """9 s of 10 fps H.264, 320x240 (one chunk)."""
    return make_video("clip_9s.mp4", duration_s=9.0, fps=10, width=320, height=240).path


@pytest.fixture(scope="session")
def clip_25s_webm(make_video: VideoFactory) -> Path:
    """25 s of 8 fps VP8 in WebM, 480x272 (two chunks of the default 20 s)."""
    return make_video("clip_25s.webm", duration_s=25.0, fps=8, width=480, height=272).path


@pytest.fixture(scope="session")
def audio_26s_mp4(make_video: VideoFactory) -> Path:
    """26 s of 12 fps H.264 with an AAC track, 640x360 (two chunks of the default 20 s)."""
    return make_video("audio_26s.mp4", duration_s=26.0, fps=12, width=640, height=360, audio=True).path


@pytest.fixture(scope="session")
def clip_50s_mp4(make_video: VideoFactory) -> Path:
    """50 s of 2 fps H.264, 160x128: more than two chunks of the default 20 s (three)."""
    return make_video("clip_50s.mp4", duration_s=50.0, fps=2, width=160, height=128).path


@pytest.fixture(scope="session")
def clip_60s_mp4(make_video: VideoFactory) -> Path:
    """60 s of 4 fps H.264, 320x240."""
    return make_video("clip_60s.mp4", duration_s=60.0, fps=4, width=320, height=240).path


@pytest.fixture(scope="session")
def clip_240s_mp4(make_video: VideoFactory) -> Path:
    """240 s of 1 fps H.264, 128x96: 60 chunks of 4 s."""
    return make_video("clip_240s.mp4", duration_s=240.0, fps=1, width=128, height=96).path


@pytest.fixture(scope="session")
def clip_280s_mp4(make_video: VideoFactory) -> Path:
    """280 s of 1 fps H.264, 128x96: 140 chunks of 2 s."""
    return make_video("clip_280s.mp4", duration_s=280.0, fps=1, width=128, height=96).path


@pytest.fixture(scope="session")
def too_long_mp4(make_video: VideoFactory, settings: Settings) -> Path:
    """10 s longer than the session's `video.max_duration_s` (1 fps, 64x64)."""
    duration = settings.video.max_duration_s + 10
    return make_video("too_long.mp4", duration_s=duration, fps=1, width=64, height=64).path


@pytest.fixture(scope="session")
def audio_only_m4a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of AAC in MP4 (.m4a) with no video stream."""
    path = tmp_path_factory.mktemp("audio-only") / "audio.m4a"
    write_audio_only(path, duration_s=3.0)
    return path


@pytest.fixture(scope="session")
def screen_share_40s(tmp_path_factory: pytest.TempPathFactory) -> ScreenClip:
    """40 s of a 640x360 screen share at 10 fps (random script, seed 2) and its change events."""
    path = tmp_path_factory.mktemp("screen-40s") / "screen.mp4"
    events = write_screen_share(path, duration_s=40.0, fps=10.0, width=640, height=360, seed=2)
    return ScreenClip(path=path, events=events, width=640, height=360, fps=10.0)
