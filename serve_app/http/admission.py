"""Admission: how many expensive requests one ingress replica takes on at once; beyond that, 503 `overloaded`.

Serve's own queue limit on the Ingress (`max_queued_requests`) answers before any of our code runs, with a
text/plain 503 (ray/serve/_private/http_util.py; `BackpressureConfig` sets only the status and Retry-After),
and it cannot tell a health check or a job poll from an upload. So the Ingress's Serve limits are set so they
never bind (`serve_app.config._ingress_defaults`), and the bound lives here instead, per kind of work:

    analyses   a synchronous /v1/analyze holds decode + inference for its whole run  (serve.max_analyses)
    intakes    an upload or URL fetch being taken in, for /v1/analyze and /v1/jobs   (serve.max_intakes)

A refused request is answered at once, before its body is read: problem+json 503 with Retry-After, nothing
started, nothing to clean up. Cheap requests (health, job status, events, results) are never refused here.

Pure Python on the replica's one event loop: a counter, no lock needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from serve_app.errors import Overloaded

__all__ = ["Admission"]


class Admission:
    def __init__(self, limit: int, what: str) -> None:
        if limit < 1:
            raise ValueError("an Admission needs a limit of at least 1")
        self.limit = limit
        self.what = what  # plural noun for the message: "synchronous analyses", "uploads being taken in"
        self.active = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one place while the block runs, or raise `Overloaded` at once when all are taken."""
        if self.active >= self.limit:
            raise Overloaded(
                f"{self.active} {self.what} are already in progress on this replica (at most {self.limit}); "
                "retry after the Retry-After delay"
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
