"""Chunk slots of one process, shared fairly between the requests in it (max-min fair, round robin).

Each `/v1/analyze` request already keeps at most `flow.chunks_in_flight` chunks in flight, but N long
requests would still put N windows ahead of a newcomer in the Chunker and VLM queues, so a one-chunk
request waited behind every long video. The requests of one ingress replica therefore share
`flow.sync_chunks_in_flight` slots: a free slot goes to the waiting request that holds the fewest (ties:
the one served least recently). A request alone still gets its whole window; a newcomer waits for one
slot to free up, not for the chunks queued ahead of it, whatever the number of long requests.

Pure asyncio, one event loop (the ingress replica's); no Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field

__all__ = ["FairShare"]


@dataclass
class _Holder:
    held: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class FairShare:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a FairShare needs at least one slot")
        self.slots = slots
        self.free = slots
        self._holders: dict[Hashable, _Holder] = {}  # insertion order is the round-robin order

    def held(self, key: Hashable) -> int:
        holder = self._holders.get(key)
        return holder.held if holder else 0

    @contextlib.asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        """Hold one slot for request `key` while the block runs (waits for its fair turn)."""
        holder = self._holders.setdefault(key, _Holder())
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        holder.waiting.append(granted)
        self._grant()
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted, then cancelled before it ran
                self._release(key)
            else:
                with contextlib.suppress(ValueError):  # `_grant` may have dropped it already
                    holder.waiting.remove(granted)
                self._forget(key)
            raise
        try:
            yield
        finally:
            self._release(key)

    def _release(self, key: Hashable) -> None:
        self._holders[key].held -= 1
        self.free += 1
        self._forget(key)
        self._grant()

    def _forget(self, key: Hashable) -> None:
        holder = self._holders.get(key)
        if holder is not None and holder.held == 0 and not holder.waiting:
            del self._holders[key]

    def _grant(self) -> None:
        while self.free > 0:
            for holder in self._holders.values():  # waiters whose task was cancelled meanwhile
                while holder.waiting and holder.waiting[0].done():
                    holder.waiting.popleft()
            candidates = [(h.held, i, key) for i, (key, h) in enumerate(self._holders.items()) if h.waiting]
            if not candidates:
                return
            _, _, key = min(candidates)
            holder = self._holders.pop(key)
            self._holders[key] = holder  # to the back of the round-robin order
            holder.waiting.popleft().set_result(None)
            holder.held += 1
            self.free -= 1
