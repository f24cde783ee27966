"""A small HTTP client for the reelserve API (used by the CLI and the benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from serve_app.schemas import AnalyzeOptions, VideoAnalysis


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


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def analyze(server: str, source: str, options: AnalyzeOptions, timeout_s: float = 3600) -> VideoAnalysis:
    """POST a file (multipart) or a URL (JSON) to `/v1/analyze`."""
    url = server.rstrip("/") + "/v1/analyze"
    fields = options.model_dump(exclude_none=True, exclude_defaults=True, by_alias=True)
    with httpx.Client(timeout=timeout_s) as client:
        if is_url(source):
            response = client.post(url, json={"video_url": source, **fields})
        else:
            path = Path(source)
            form = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}
            with path.open("rb") as fh:
                response = client.post(url, data=form, files={"file": (path.name, fh, "application/octet-stream")})
    _raise_for_problem(response)
    return VideoAnalysis.model_validate(response.json())


def wait_ready(server: str, timeout_s: float = 5) -> dict[str, Any]:
    with httpx.Client(timeout=timeout_s) as client:
        response = client.get(server.rstrip("/") + "/readyz")
    _raise_for_problem(response)
    return response.json()
