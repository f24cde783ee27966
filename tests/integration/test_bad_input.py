"""Bad input gets a precise 4xx problem body, and the service stays ready for the next request."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from serve_app.config import Settings

if TYPE_CHECKING:
    from tests.conftest import Clip

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory, clip_4s_mp4: Path, faststart_mp4: Clip, audio_only_m4a: Path
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    good = clip_4s_mp4
    faststart = faststart_mp4.path  # 12 s, 320x240, index first: the cut keeps an index promising 12 s
    truncated = root / "truncated.mp4"
    truncated.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    audio = audio_only_m4a
    text = root / "notes.txt"
    text.write_text("this is not a video\n" * 100)
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    garbage = root / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    return {"good": good, "truncated": truncated, "audio": audio, "text": text, "empty": empty, "garbage": garbage}


def upload(http: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as fh:
        return http.post("/v1/analyze", data=fields, files={"file": (path.name, fh, "application/octet-stream")})


def assert_problem(response: httpx.Response, status: int, type_suffix: str, detail_part: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"].endswith("/" + type_suffix), body
    assert detail_part.lower() in body["detail"].lower(), body


def assert_still_healthy(http: httpx.Client, good: Path) -> None:
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    response = upload(http, good, aggregate="false")
    assert response.status_code == 200, response.text
    assert all(c["error"] is None for c in response.json()["chunks"])


@pytest.mark.parametrize(
    ("name", "status", "type_suffix", "detail"),
    [
        ("empty", 400, "empty-upload", "empty"),
        ("text", 422, "invalid-video", "not"),
        ("garbage", 422, "invalid-video", ""),
        ("truncated", 422, "invalid-video", "truncated"),
        ("audio", 422, "no-video-stream", "no video stream"),
    ],
)
def test_bad_uploads(
    http: httpx.Client, files: dict[str, Path], name: str, status: int, type_suffix: str, detail: str
) -> None:
    assert_problem(upload(http, files[name]), status, type_suffix, detail)
    assert_still_healthy(http, files["good"])


def test_over_limit_duration_and_size(
    http: httpx.Client, files: dict[str, Path], settings: Settings, too_long_mp4: Path, tmp_path: Path
) -> None:
    long = too_long_mp4
    assert_problem(upload(http, long), 422, "video-too-long", str(int(settings.video.max_duration_s)))
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(settings.video.max_upload_bytes + 1024))
    assert_problem(upload(http, big), 413, "payload-too-large", "limit")
    assert_still_healthy(http, files["good"])


@pytest.mark.parametrize(
    ("body", "status", "type_suffix", "detail"),
    [
        ({"video_url": "ftp://example.com/a.mp4"}, 400, "url-forbidden", "http"),
        ({"video_url": "http://media.test:9/nothing.mp4"}, 400, "url-fetch-failed", "could not fetch"),
        ({"video_url": "http://media.test:9/a.mp4", "mode": "nonsense"}, 422, "invalid-options", "mode"),
        ({"video_url": "http://media.test:9/a.mp4", "fps": 100}, 422, "invalid-options", "fps"),
        ({"video_url": "http://media.test:9/a.mp4", "mode": "custom"}, 422, "invalid-options", "prompt"),
        (
            {"video_url": "http://media.test:9/a.mp4", "processor_kwargs": {"max_frames": 10**6}},
            422,
            "invalid-options",
            "extra",
        ),
    ],
)
def test_bad_json_requests(
    http: httpx.Client, files: dict[str, Path], body: dict, status: int, type_suffix: str, detail: str
) -> None:
    assert_problem(http.post("/v1/analyze", json=body), status, type_suffix, detail)
    assert_still_healthy(http, files["good"])


def test_url_that_is_not_a_video_or_missing(
    http: httpx.Client, media_server: tuple[str, Path], files: dict[str, Path]
) -> None:
    base, root = media_server
    (root / "page.html").write_text("<html>hello</html>")
    assert_problem(http.post("/v1/analyze", json={"video_url": f"{base}/page.html"}), 422, "invalid-video", "")
    assert_problem(http.post("/v1/analyze", json={"video_url": f"{base}/missing.mp4"}), 400, "url-fetch-failed", "404")
    assert_still_healthy(http, files["good"])


def test_bad_custom_schema_and_unknown_field(http: httpx.Client, files: dict[str, Path]) -> None:
    response = upload(http, files["good"], mode="custom", prompt="x", schema='{"type": "array"}')
    assert_problem(response, 422, "invalid-options", "object")
    assert_problem(upload(http, files["good"], frames="9999"), 422, "invalid-options", "unknown form field")
    with files["good"].open("rb") as fh:
        response = http.post("/v1/analyze", files={"video": ("x.mp4", fh)})
    assert_problem(response, 400, "bad-request", "'file'")
    assert_problem(
        http.post("/v1/analyze", content=b"hi", headers={"content-type": "text/plain"}), 400, "bad-request", "multipart"
    )


def test_health_and_docs(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    spec = http.get("/openapi.json").json()
    assert "/v1/analyze" in spec["paths"]
    content = spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(content)
    assert http.get("/docs").status_code == 200
