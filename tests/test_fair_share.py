"""FairShare: slots go to the waiting request that holds the fewest, and never leak on cancellation."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.fair_share import FairShare


async def hold(share: FairShare, key: str, release: asyncio.Event, order: list[str]) -> None:
    async with share.slot(key):
        order.append(key)
        await release.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_lone_request_takes_every_slot_and_no_more() -> None:
    async def main() -> None:
        share, release, order = FairShare(3), asyncio.Event(), []
        tasks = [asyncio.create_task(hold(share, "long", release, order)) for _ in range(5)]
        await settle()
        assert order == ["long"] * 3 and share.free == 0
        release.set()
        await asyncio.gather(*tasks)
        assert order == ["long"] * 5 and share.free == 3 and share.held("long") == 0

    asyncio.run(main())


def test_a_newcomer_gets_the_next_free_slot_before_a_long_request_queued_earlier() -> None:
    async def main() -> None:
        share, order = FairShare(2), []
        gates = [asyncio.Event() for _ in range(12)]
        long = [asyncio.create_task(hold(share, "long", gates[i], order)) for i in range(10)]
        await settle()
        small = asyncio.create_task(hold(share, "small", gates[10], order))
        await settle()
        assert order == ["long", "long"]  # full: the newcomer waits
        gates[0].set()  # one long chunk ends: its slot goes to the newcomer, not to the long request's queue
        await settle()
        assert order == ["long", "long", "small"]
        for gate in gates:
            gate.set()
        await asyncio.gather(*long, small)
        assert share.free == 2

    asyncio.run(main())


def test_two_long_requests_share_the_slots_evenly() -> None:
    async def main() -> None:
        share, order = FairShare(4), []
        gates = {key: [asyncio.Event() for _ in range(8)] for key in "ab"}
        tasks = [asyncio.create_task(hold(share, "a", gate, order)) for gate in gates["a"]]
        await settle()
        tasks += [asyncio.create_task(hold(share, "b", gate, order)) for gate in gates["b"]]
        await settle()
        assert (share.held("a"), share.held("b")) == (4, 0)
        held = []
        for gate in gates["a"][:4]:  # a's chunks end one by one
            gate.set()
            await settle()
            held.append((share.held("a"), share.held("b")))
        # b catches up, then the slots stay split evenly: a's queued chunks get only a's share.
        assert held == [(3, 1), (2, 2), (2, 2), (2, 2)]
        for gate in gates["a"] + gates["b"]:
            gate.set()
        await asyncio.gather(*tasks)
        assert share.free == 4 and order.count("a") == order.count("b") == 8

    asyncio.run(main())


@pytest.mark.parametrize("when", ["waiting", "granted-not-yet-running"])
def test_cancelled_waiters_leave_no_slot_behind(when: str) -> None:
    async def main() -> None:
        share, order = FairShare(1), []
        first_gate, second_gate = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(hold(share, "a", first_gate, order))
        await settle()
        second = asyncio.create_task(hold(share, "b", second_gate, order))
        await settle()
        if when == "granted-not-yet-running":
            first_gate.set()
            await first  # its release grants the slot to `second`, which has not run since
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        if when == "waiting":
            first_gate.set()
            await first
        assert share.free == 1 and share.held("a") == share.held("b") == 0
        third_gate = asyncio.Event()
        third_gate.set()
        await hold(share, "c", third_gate, order)  # the slot is usable again
        assert order[-1] == "c"

    asyncio.run(main())
