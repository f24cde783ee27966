"""Small helpers the job tests share: submit, poll, read an SSE stream."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx


def submit(http: httpx.Client, path: Path, headers: dict[str, str] | None = None, **fields: object) -> httpx.Response:
    with path.open("rb") as fh:
        return http.post(
            "/v1/jobs",
            data={k: str(v) for k, v in fields.items()},
            files={"file": (path.name, fh, "application/octet-stream")},
            headers=headers or {},
        )


def wait_for(http: httpx.Client, job_id: str, predicate, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached the expected state; last: {job}")


def events(http: httpx.Client, job_id: str, timeout_s: float = 300) -> list[tuple[str, dict]]:
    """Read the whole event stream: [(event, data), ...]."""
    out: list[tuple[str, dict]] = []
    event = None
    with http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout_s) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((event, json.loads(line.removeprefix("data: "))))
    return out
