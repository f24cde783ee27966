"""Server-Sent Events of a job (`GET /v1/jobs/{id}/events`): `chunk` per finished chunk, `progress`, then
`result` (or `end`).

The stream reads the durable job store, not the runner, so it survives runner restarts and any ingress
replica can serve it. Each tick costs one read of the small job record: `progress.chunks_done` says how
many chunk files exist, and the new ones are read by key (`JobStore.load_chunk_at`), never by listing.

The reconnect contract (what `reelserve jobs follow`, `client.follow_job` and a browser's EventSource do):

- a `chunk` event's id is its place in finishing order, 1, 2, 3, ... — the same on every replica and every
  reconnect; `progress` events carry no id (a client keeps the last one it saw), `result`/`end` are final;
- a request with `Last-Event-ID: n` gets the chunks after the n-th, then the current progress, then news;
- a stream opens with `retry: <jobs.events_retry_ms>` and sends a `: keep-alive` comment whenever nothing
  else was sent for `jobs.events_keepalive_s`, so idle-timeout proxies keep it;
- a stream lasts at most `jobs.events_stream_s`, and less when the request asks Serve for a shorter
  timeout (`x-request-timeout-seconds`): Serve cuts any response that old mid-event (its proxy applies
  `http_options.request_timeout_s` to streaming responses from their start), so the stream ends first,
  cleanly, at an event boundary. A stream that ends without `result` or `end` means: reconnect with
  Last-Event-ID after the retry delay. Jobs longer than any timeout are followed through several streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from serve_app.config import JobSettings
from serve_app.store.jobs import JobStore

__all__ = ["job_events", "resume_point", "sse", "stream_window_s"]

# The stream ends this share of the request timeout early: the proxy's clock started before ours (request
# routing, the record read), and the last tick may take up to `events_poll_s` more.
TIMEOUT_HEADROOM = 0.2


def sse(event: str, data: str, event_id: str | None = None) -> bytes:
    """One Server-Sent Event (data is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def resume_point(last_event_id: str | None) -> int:
    """How many chunk events a client with this `Last-Event-ID` already has (0: none, or an id it cannot
    have got from a chunk event: it then gets every chunk, which repeats rather than loses)."""
    try:
        return max(0, int((last_event_id or "").strip()))
    except ValueError:
        return 0


def stream_window_s(settings: JobSettings, request_timeout_header: str | None) -> float:
    """How long one stream may last: `events_stream_s`, or less when the request's own Serve timeout
    (`x-request-timeout-seconds`, positive) is shorter."""
    window = settings.events_stream_s
    try:
        timeout = float(request_timeout_header) if request_timeout_header else 0.0
    except ValueError:
        timeout = 0.0
    if timeout > 0:
        window = min(window, timeout * (1 - TIMEOUT_HEADROOM))
    return window


async def job_events(
    store: JobStore, job_id: str, settings: JobSettings, *, after: int = 0, window_s: float | None = None
) -> AsyncIterator[bytes]:
    """The job's events after the `after`-th chunk, for `window_s` (default `settings.events_stream_s`)."""
    ends_at = time.monotonic() + (settings.events_stream_s if window_s is None else window_s)
    sent = after
    last_progress = None
    yield f"retry: {settings.events_retry_ms}\n\n".encode()
    last_write = time.monotonic()
    while True:
        job = await asyncio.to_thread(store.get, job_id)
        if job is None:  # deleted (retention) while being followed
            yield sse("end", json.dumps({"id": job_id, "status": "deleted"}), "end")
            return
        while sent < job.progress.chunks_done:
            stored = await asyncio.to_thread(store.load_chunk_at, job_id, sent)
            if stored is None:  # counted but not readable (yet): look again next tick
                break
            sent += 1
            yield sse("chunk", stored.result.model_dump_json(), str(sent))
            last_write = time.monotonic()
        if job.progress != last_progress:
            last_progress = job.progress
            yield sse("progress", job.model_dump_json(include={"id", "status", "progress"}))
            last_write = time.monotonic()
        if job.terminal:
            result = await asyncio.to_thread(store.load_result, job_id) if job.status == "succeeded" else None
            if result is not None:
                yield sse("result", result.model_dump_json(), "result")
            else:
                yield sse("end", job.model_dump_json(include={"id", "status", "error"}), "end")
            return
        now = time.monotonic()
        if now + settings.events_poll_s >= ends_at:
            note = f": stream window over; reconnect with Last-Event-ID: {sent}"
            yield f"{note}\nretry: {settings.events_retry_ms}\n\n".encode()
            return
        if now - last_write >= settings.events_keepalive_s:
            yield b": keep-alive\n\n"
            last_write = now
        await asyncio.sleep(settings.events_poll_s)
