"""Server-Sent Events of a job (`GET /v1/jobs/{id}/events`): `chunk` per finished chunk, `progress`, then
`result` (or `end`).

The stream reads the durable job store, not the runner, so it survives runner restarts and any ingress
replica can serve it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from serve_app.store.jobs import JobStore

__all__ = ["job_events", "sse"]


def sse(event: str, data: str, event_id: str | None = None) -> bytes:
    """One Server-Sent Event (data is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


async def job_events(store: JobStore, job_id: str, poll_s: float) -> AsyncIterator[bytes]:
    sent: set[str] = set()
    last_progress = None
    while True:
        job = store.get(job_id)
        if job is None:  # deleted (retention) while being followed
            yield sse("end", json.dumps({"id": job_id, "status": "deleted"}), "end")
            return
        for key in store.chunk_keys(job_id):
            if key not in sent:
                stored = store.load_chunk(key)
                sent.add(key)
                yield sse("chunk", stored.result.model_dump_json(), f"chunk-{stored.result.index}")
        if job.progress != last_progress:
            last_progress = job.progress
            yield sse("progress", job.model_dump_json(include={"id", "status", "progress"}))
        if job.terminal:
            result = store.load_result(job_id) if job.status == "succeeded" else None
            if result is not None:
                yield sse("result", result.model_dump_json(), "result")
            else:
                yield sse("end", job.model_dump_json(include={"id", "status", "error"}), "end")
            return
        await asyncio.sleep(poll_s)
