"""What a replica does so memory it no longer uses is given back: reference cycles and glibc's heap.

- Serve 2.60 keeps requests it routed in reference cycles (see `GC_EVERY_S`), so their frames wait for
  CPython's next full collection; `freeze_startup` + `collect_cycles` make that collection cheap and
  frequent in the replicas that route chunk calls (the ingress, the job runner).
- glibc keeps freed heap in its arenas for reuse instead of returning it to the OS: after a job the
  Chunker (decoded frames) and the VLM replica (the processor's tensors) held +250 / +220 MiB more than
  before it (bench/soak.py). `IdleTrim` calls `malloc_trim(0)` once a replica has been idle for
  `TRIM_AFTER_S`: cheap (it only hands back free pages), never in the middle of work.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["GC_EVERY_S", "TRIM_AFTER_S", "IdleTrim", "collect_cycles", "freeze_startup", "trim_heap"]

logger = logging.getLogger(__name__)

#: Serve 2.60 leaves requests it routed in reference cycles: a routing task it cancels (another task found
#: the request a replica) keeps its PendingRequest, resolved args included, through its CancelledError's
#: traceback (ray/serve/_private/request_router/request_router.py, `_fulfill_pending_requests`). A VLM
#: call's args hold the chunk's frames, so their plasma object (26 MiB at 640x352) lived until CPython's
#: next full collection, which a replica with ~200k long-lived objects makes rarely: a 16-chunk job left
#: the frames of all 16 chunks in the store after it. `collect_cycles` frees them chunk by chunk.
GC_EVERY_S = 1.0
_gc = {"frozen": False, "last": 0.0}


def freeze_startup() -> None:
    """Called at the end of a replica's `__init__` (the ingress, the job runner): collect, then move every
    object alive (modules, classes, settings: ~200k after importing Ray and Serve) out of the collector's
    generations for good (`gc.freeze`), so that a full collection walks only what the replica made since:
    ~1 ms instead of ~150 ms. Turns `collect_cycles` on in this process."""
    gc.collect()
    gc.freeze()
    _gc["frozen"] = True


def collect_cycles(force: bool = False) -> None:
    """A full collection, at most every GC_EVERY_S (always with `force`), in processes that called
    `freeze_startup`; elsewhere (bulk workers, tests) a no-op, as a full walk there costs ~150 ms."""
    now = time.monotonic()
    if _gc["frozen"] and (force or now - _gc["last"] >= GC_EVERY_S):
        _gc["last"] = now
        gc.collect()


#: Seconds without work before a replica hands its free heap back.
TRIM_AFTER_S = 2.0


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_TRIM = _malloc_trim()  # None off glibc (musl, macOS): nothing to do there


def trim_heap() -> None:
    """Return the free pages of every glibc arena to the OS (a no-op where there is no malloc_trim)."""
    if _TRIM is not None:
        _TRIM(0)


class IdleTrim:
    """`touch()` after each unit of work (in the replica's event loop): `trim_heap` runs once nothing more
    came for `after_s` and `idle()` says no work is running."""

    def __init__(
        self, idle: Callable[[], bool], after_s: float = TRIM_AFTER_S, trim: Callable[[], None] = trim_heap
    ) -> None:
        self.idle = idle
        self.after_s = after_s
        self.trim = trim
        self._timer: asyncio.TimerHandle | None = None

    def touch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.after_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.idle():
            started = time.perf_counter()
            self.trim()
            logger.debug("heap trimmed in %.1f ms", 1000 * (time.perf_counter() - started))
