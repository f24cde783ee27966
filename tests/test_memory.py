"""serve_app.memory: the heap is trimmed once a replica has been idle, never while it works."""

from __future__ import annotations

import asyncio

from serve_app import memory


def test_trim_waits_for_quiet_and_skips_while_work_runs() -> None:
    trims: list[int] = []

    def trim_and_count() -> None:
        memory.trim_heap()  # the real one
        trims.append(0)

    running = [0]
    trim = memory.IdleTrim(lambda: running[0] == 0, after_s=0.05, trim=trim_and_count)

    async def main() -> None:
        for _ in range(5):  # steady work: every touch postpones the trim
            trim.touch()
            await asyncio.sleep(0.01)
        assert trims == []
        await asyncio.sleep(0.1)
        assert trims == [0], "one trim once quiet"
        running[0] = 1  # a long call still running when the timer fires
        trim.touch()
        await asyncio.sleep(0.1)
        assert trims == [0], "no trim in the middle of work"

    asyncio.run(main())


def test_trim_heap_runs_on_this_glibc() -> None:
    assert memory._TRIM is not None, "glibc's malloc_trim is found (the images are Debian)"
    memory.trim_heap()
