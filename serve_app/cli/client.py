"""A small HTTP client for the reelserve API (used by the CLI and the benchmarks).

The client's API key comes from `REELSERVE_API_KEY` (singular: the one key this
client uses; the server's list is `REELSERVE_API_KEYS`) unless passed explicitly.

`follow_job` follows a job's event stream the way serve_app.http.events
describes: a spec-correct SSE parser (httpx-sse), a reconnect with
Last-Event-ID whenever a stream ends without `result`/`end` (its window
closed, a proxy cut it, the network dropped), after the server's `retry:`
delay; and, when streams keep failing, polling the job record instead.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from serve_app.schemas import AnalyzeOptions, Job, JobList, SearchResults, VideoAnalysis

logger = logging.getLogger(__name__)


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


def _base(server: str) -> str:
    return server.rstrip("/")


def list_jobs(server: str, limit: int = 50, api_key: str | None = None) -> list[Job]:
    with http_client(60, api_key) as client:
        response = client.get(f"{_base(server)}/v1/jobs", params={"limit": limit})
    _raise_for_problem(response)
    return JobList.model_validate(response.json()).jobs


def get_job(server: str, job_id: str, api_key: str | None = None) -> Job:
    with http_client(60, api_key) as client:
        response = client.get(f"{_base(server)}/v1/jobs/{job_id}")
    _raise_for_problem(response)
    return Job.model_validate(response.json())


def cancel_job(server: str, job_id: str, api_key: str | None = None) -> Job:
    with http_client(600, api_key) as client:
        response = client.delete(f"{_base(server)}/v1/jobs/{job_id}")
    _raise_for_problem(response)
    return Job.model_validate(response.json())


def job_result(server: str, job_id: str, api_key: str | None = None) -> VideoAnalysis:
    with http_client(600, api_key) as client:
        response = client.get(f"{_base(server)}/v1/jobs/{job_id}/result")
    _raise_for_problem(response)
    return VideoAnalysis.model_validate(response.json())


def job_file(server: str, job_id: str, name: str, api_key: str | None = None) -> bytes:
    """One of a job's files, e.g. `contact-sheet.jpg`, `chapters.md`, `transcript.vtt`."""
    with http_client(600, api_key) as client:
        response = client.get(f"{_base(server)}/v1/jobs/{job_id}/{name}")
    _raise_for_problem(response)
    return response.content


def search(server: str, query: str, limit: int = 20, api_key: str | None = None) -> SearchResults:
    """`GET /v1/search`: the processed videos' best passages for `query` (serve_app.search.query's syntax)."""
    with http_client(60, api_key) as client:
        response = client.get(f"{_base(server)}/v1/search", params={"q": query, "limit": limit})
    _raise_for_problem(response)
    return SearchResults.model_validate(response.json())


JOB_EVENTS = frozenset({"chunk", "progress", "result", "end"})
FINAL_EVENTS = frozenset({"result", "end"})


@dataclass(frozen=True)
class JobEvent:
    """One event of a job: `event` (chunk, progress, result, end), its JSON `data`, and the id it carried
    (chunks: their place in finishing order; progress carries none)."""

    event: str
    data: dict[str, Any]
    id: str | None = None
    stream: int = 0  # which stream (connection) of this follow brought it, 0-based; polling: -1


def follow_job(
    server: str,
    job_id: str,
    api_key: str | None = None,
    *,
    last_event_id: str | None = None,
    request_timeout_s: float | None = None,
    idle_timeout_s: float = 60.0,
    max_failures: int = 3,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[JobEvent]:
    """The job's events until `result` or `end`, across as many streams as it takes.

    `request_timeout_s` asks Serve for that timeout per stream (`x-request-timeout-seconds`; the server then
    closes each stream before it). A stream that sends nothing, not even a keep-alive, for `idle_timeout_s`
    is taken for dead. After `max_failures` streams in a row that broke without bringing a chunk, the job
    record is polled every `poll_s` instead (progress and the final event, no chunk events). Problems (4xx)
    raise `ApiError`.
    """
    url = f"{_base(server)}/v1/jobs/{job_id}/events"
    timeout = httpx.Timeout(30.0, read=idle_timeout_s)
    retry_s, failures, stream = 1.0, 0, 0
    with http_client(None, api_key) as client:
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            if request_timeout_s:
                headers["x-request-timeout-seconds"] = f"{request_timeout_s:g}"
            got_any = broke = False
            try:
                with connect_sse(client, "GET", url, headers=headers, timeout=timeout) as source:
                    if 400 <= source.response.status_code < 500:
                        source.response.read()
                        _raise_for_problem(source.response)
                    source.response.raise_for_status()
                    for sse in source.iter_sse():
                        if sse.retry is not None:
                            retry_s = sse.retry / 1000
                        if sse.event not in JOB_EVENTS:
                            continue  # e.g. a block with only `retry:` (httpx-sse hands those out too)
                        got_any = got_any or sse.event != "progress"  # a stream's opening progress is no news
                        last_event_id = sse.id or last_event_id
                        own_id = None if sse.event == "progress" else (sse.id or None)
                        yield JobEvent(sse.event, json.loads(sse.data), own_id, stream)
                        if sse.event in FINAL_EVENTS:
                            return
            except (httpx.TransportError, httpx.HTTPStatusError, SSEError) as exc:
                logger.info("job %s: event stream %d broke (%s); reconnecting", job_id, stream, exc)
                broke = True
            # A stream that ended cleanly (its window closed) or brought chunks worked; one that broke
            # without news counts towards the polling fallback.
            failures = 0 if got_any or not broke else failures + 1
            if failures >= max_failures:
                logger.warning("job %s: %d event streams failed in a row; polling the job instead", job_id, failures)
                yield from _poll_job(client, server, job_id, poll_s, sleep)
                return
            stream += 1
            sleep(retry_s)


def _poll_job(
    client: httpx.Client, server: str, job_id: str, poll_s: float, sleep: Callable[[float], None]
) -> Iterator[JobEvent]:
    """The polling fallback: the job record every `poll_s`, a `progress` event when it changed, then the
    final event."""
    last = None
    while True:
        response = client.get(f"{_base(server)}/v1/jobs/{job_id}", timeout=60)
        _raise_for_problem(response)
        job = Job.model_validate(response.json())
        if job.progress != last:
            last = job.progress
            yield JobEvent("progress", job.model_dump(mode="json", include={"id", "status", "progress"}), None, -1)
        if job.terminal:
            if job.status == "succeeded":
                result = client.get(f"{_base(server)}/v1/jobs/{job_id}/result", timeout=600)
                _raise_for_problem(result)
                yield JobEvent("result", result.json(), "result", -1)
            else:
                yield JobEvent("end", job.model_dump(mode="json", include={"id", "status", "error"}), "end", -1)
            return
        sleep(poll_s)
