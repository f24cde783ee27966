"""A small HTTP client for the reelserve API (used by the CLI and the benchmarks).

The client's API key comes from `REELSERVE_API_KEY` (singular: the one key this
client uses; the server's list is `REELSERVE_API_KEYS`) unless passed explicitly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from serve_app.schemas import AnalyzeOptions, Job, VideoAnalysis


class ApiError(Exception):
    """The server answered with a problem body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('title')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"title": response.reason_phrase, "detail": response.text[:500]}
    raise ApiError(response.status_code, body)


API_KEY_ENV = "REELSERVE_API_KEY"


def http_client(timeout_s: float | None, api_key: str | None = None) -> httpx.Client:
    """An httpx client that sends `Authorization: Bearer <key>` when a key is given or set in the environment."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "").strip()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(timeout=timeout_s, headers=headers)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _post_video(client: httpx.Client, url: str, source: str, options: AnalyzeOptions, **kw: Any) -> httpx.Response:
    """POST a file (multipart) or a URL (JSON) with the options."""
    fields = options.model_dump(exclude_none=True, exclude_defaults=True, by_alias=True)
    if is_url(source):
        return client.post(url, json={"video_url": source, **fields}, **kw)
    path = Path(source)
    form = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}
    with path.open("rb") as fh:
        return client.post(url, data=form, files={"file": (path.name, fh, "application/octet-stream")}, **kw)


def analyze(
    server: str, source: str, options: AnalyzeOptions, timeout_s: float = 3600, api_key: str | None = None
) -> VideoAnalysis:
    """Synchronous analysis (`POST /v1/analyze`), for short videos."""
    with http_client(timeout_s, api_key) as client:
        response = _post_video(client, server.rstrip("/") + "/v1/analyze", source, options)
    _raise_for_problem(response)
    return VideoAnalysis.model_validate(response.json())


def submit_job(
    server: str, source: str, options: AnalyzeOptions, idempotency_key: str | None = None, api_key: str | None = None
) -> Job:
    """`POST /v1/jobs`: returns the queued job at once."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with http_client(600, api_key) as client:
        response = _post_video(client, server.rstrip("/") + "/v1/jobs", source, options, headers=headers)
    _raise_for_problem(response)
    return Job.model_validate(response.json())


def job_events(server: str, job_id: str, api_key: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The job's Server-Sent Events as (event, data) until the stream ends."""
    event = "message"
    with (
        http_client(None, api_key) as client,
        client.stream("GET", f"{server.rstrip('/')}/v1/jobs/{job_id}/events") as r,
    ):
        if not r.is_success:
            r.read()
            _raise_for_problem(r)
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield event, json.loads(line.removeprefix("data: "))
