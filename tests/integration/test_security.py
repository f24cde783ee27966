"""Security over real HTTP: API keys, SSRF-safe URL fetching, streaming upload limits, option size limits.

The session runs with auth on, a test key, `media.test` -> 127.0.0.1 allowlisted and private/metadata
test hosts mapped by the injectable resolver (see conftest): nothing here can leave loopback.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from serve_app.config import Settings
from tests.integration.test_bad_input import assert_problem

pytestmark = pytest.mark.integration


@pytest.fixture()
def anon(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=120) as client:
        yield client


def upload(client: httpx.Client, path: Path, headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    with path.open("rb") as fh:
        return client.post("/v1/analyze", data=fields, files={"file": ("clip.mp4", fh)}, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-the-right-key-at-all"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_requests_without_a_valid_key_get_401(anon: httpx.Client, clip_3s_mp4: Path, headers: dict[str, str]) -> None:
    for response in (
        upload(anon, clip_3s_mp4, headers, aggregate="false"),
        anon.post("/v1/analyze", json={"video_url": "http://media.test:9/a.mp4"}, headers=headers),
        anon.get("/v1/jobs", headers=headers),
    ):
        assert_problem(response, 401, "unauthorized", "")
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_right_key_works_and_health_and_docs_are_public(
    anon: httpx.Client, api_key: str, clip_3s_mp4: Path
) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/readyz").json()["status"] == "ready"
    spec = anon.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert anon.get("/docs").status_code == 200
    response = upload(anon, clip_3s_mp4, {"Authorization": f"Bearer {api_key}"}, aggregate="false")
    assert response.status_code == 200, response.text
    assert anon.get("/v1/jobs", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200


REFUSED_URLS = [
    ("http://127.0.0.1:{port}/clip.mp4", "loopback"),
    ("http://localhost:{port}/clip.mp4", "loopback"),
    ("http://[::1]:{port}/clip.mp4", "loopback"),
    ("http://0.0.0.0:{port}/clip.mp4", "unspecified"),
    ("file:///etc/passwd", "http"),
    ("http://loopback.test:{port}/clip.mp4", "loopback"),
    ("http://ten.test/clip.mp4", "private"),
    ("http://oneseventwo.test/clip.mp4", "private"),
    ("http://oneninetwo.test:8080/clip.mp4", "private"),
    ("http://cgnat.test/clip.mp4", "CGNAT"),
    ("http://metadata.test/latest/meta-data/", "metadata"),
    ("{base}/redirect?to=http://metadata.test/latest/meta-data/", "metadata"),
    ("{base}/redirect?to=http://ten.test/clip.mp4", "private"),
    ("{base}/redirect?to=http://127.0.0.1:{port}/clip.mp4", "loopback"),
    ("{base}/redirect?to=file:///etc/passwd", "http"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_ssrf_urls_are_refused(
    http: httpx.Client, media_server: tuple[str, Path], clip_3s_mp4: Path, url: str, reason: str
) -> None:
    base, root = media_server
    (root / "clip.mp4").write_bytes(clip_3s_mp4.read_bytes())
    url = url.format(base=base, port=urlsplit(base).port)
    assert_problem(http.post("/v1/analyze", json={"video_url": url}), 400, "url-forbidden", reason)


def test_allowed_redirect_still_works_and_service_is_healthy(
    http: httpx.Client, media_server: tuple[str, Path], clip_3s_mp4: Path
) -> None:
    base, root = media_server
    (root / "clip.mp4").write_bytes(clip_3s_mp4.read_bytes())
    response = http.post("/v1/analyze", json={"video_url": f"{base}/redirect?to=/clip.mp4", "aggregate": False})
    assert response.status_code == 200, response.text
    assert http.get("/readyz").json()["status"] == "ready"


def test_oversized_streamed_upload_is_cut_off(http: httpx.Client, settings: Settings) -> None:
    """Chunked (no Content-Length): the server answers 413 and closes long before the body ends."""
    limit = settings.video.max_upload_bytes
    total = 10 * limit
    block = b"\0" * (1 << 20)
    boundary = "cutoff-boundary"
    sent = 0
    finished = False

    def body() -> Iterator[bytes]:
        nonlocal sent, finished
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'.encode()
        while sent < total:
            sent += len(block)
            yield block
            time.sleep(0.01)  # ~100 MB/s at most: the server has time to answer mid-upload
        yield f"\r\n--{boundary}--\r\n".encode()
        finished = True

    started = time.perf_counter()
    response = http.post(
        "/v1/analyze", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_problem(response, 413, "payload-too-large", "limit")
    assert not finished and sent < total / 2, f"sent {sent} of {total} bytes before the 413"
    assert time.perf_counter() - started < 60
    assert http.get("/readyz").json()["status"] == "ready"


def test_declared_oversized_upload_is_refused_before_reading(server: str, api_key: str, settings: Settings) -> None:
    """A Content-Length over the limit gets 413 with no body sent at all."""
    parts = urlsplit(server)
    declared = 10 * settings.video.max_upload_bytes
    head = (
        f"POST /v1/analyze HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(head.encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, reply
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, reply[:500]
    assert b"connection: close" in reply.lower()


def custom_schema(properties: int, depth: int = 1) -> dict:
    schema: dict = {"type": "object", "properties": {f"field_{i:05d}": {"type": "string"} for i in range(properties)}}
    for _ in range(depth - 1):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def test_prompt_and_schema_limits_over_http(http: httpx.Client, clip_3s_mp4: Path) -> None:
    url = "http://media.test:9/a.mp4"  # never fetched: the options are refused first
    too_long = "x" * 4001
    assert_problem(
        http.post("/v1/analyze", json={"video_url": url, "prompt": too_long}), 422, "invalid-options", "prompt"
    )
    assert_problem(upload(http, clip_3s_mp4, prompt=too_long), 422, "invalid-options", "prompt")
    big = custom_schema(700)
    assert 16 * 1024 < len(json.dumps(big)) < 64 * 1024
    body = {"video_url": url, "mode": "custom", "prompt": "p", "schema": big}
    assert_problem(http.post("/v1/analyze", json=body), 422, "invalid-options", "16384")
    form = {"mode": "custom", "prompt": "p", "schema": json.dumps(big)}
    assert_problem(upload(http, clip_3s_mp4, **form), 422, "invalid-options", "16384")
    deep = {"video_url": url, "mode": "custom", "prompt": "p", "schema": custom_schema(1, depth=12)}
    assert_problem(http.post("/v1/analyze", json=deep), 422, "invalid-options", "levels deep; at most 8")
    huge = {"video_url": url, "mode": "custom", "prompt": "p", "schema": custom_schema(4000)}
    assert_problem(http.post("/v1/analyze", json=huge), 413, "payload-too-large", "JSON body")
    assert_problem(
        upload(http, clip_3s_mp4, mode="custom", prompt="p", schema=json.dumps(huge["schema"])),
        413,
        "payload-too-large",
        "'schema'",
    )
    assert http.get("/readyz").json()["status"] == "ready"
