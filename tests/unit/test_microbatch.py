"""The bench's asyncio micro-batcher: batches, order, delay and per-item failures."""
from __future__ import annotations

import asyncio
import threading

import pytest

from bench.peers.microbatch import MicroBatcher


def _run(coroutine):
    return asyncio.run(coroutine)


def test_queued_items_go_out_in_batches_of_at_most_max_batch_in_order():
    calls = []

    def double(items):
        calls.append(list(items))
        return [2 * i for i in items]

    async def main():
        batcher = MicroBatcher(double, max_batch=4)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        return results, list(batcher.batch_sizes)

    results, sizes = _run(main())
    assert results == [2 * i for i in range(10)]
    # All ten were queued before the batching task first ran: full batches, in order.
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and sizes == [4, 4, 2]


def test_items_arriving_during_a_forward_pass_form_the_next_batch():
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow(items):
        calls.append(list(items))
        if len(calls) == 1:
            started.set()
            release.wait(5)
        return items

    async def main():
        batcher = MicroBatcher(slow, max_batch=32)
        first = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        later = [asyncio.ensure_future(batcher.submit(x)) for x in "bcd"]
        await asyncio.sleep(0.05)
        release.set()
        results = [await first] + [await f for f in later]
        await batcher.close()
        return results

    assert _run(main()) == ["a", "b", "c", "d"]
    assert calls == [["a"], ["b", "c", "d"]]  # no delay: "a" went out alone, at once


def test_the_delay_lets_a_late_item_join_the_batch_and_zero_delay_does_not():
    async def two_items(delay_ms: float) -> list[int]:
        batcher = MicroBatcher(lambda items: items, max_batch=8, max_delay_ms=delay_ms)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.02)
        second = await batcher.submit(2)
        assert (await first, second) == (1, 2)
        await batcher.close()
        return list(batcher.batch_sizes)

    assert _run(two_items(500)) == [2]
    assert _run(two_items(0)) == [1, 1]


def test_a_failing_item_fails_only_its_own_request():
    def picky(items):
        if "bad" in items:
            raise ValueError("bad item")
        return [s.upper() for s in items]

    async def main():
        batcher = MicroBatcher(picky, max_batch=8)
        results = await asyncio.gather(*(batcher.submit(s) for s in ("a", "bad", "c")),
                                       return_exceptions=True)
        await batcher.close()
        return results, list(batcher.batch_sizes)

    (a, bad, c), sizes = _run(main())
    assert (a, c) == ("A", "C")
    assert isinstance(bad, ValueError) and str(bad) == "bad item"
    assert sizes == [3]  # tried together first, then one by one


def test_only_the_latest_batch_sizes_are_kept():
    async def main():
        batcher = MicroBatcher(lambda items: items, max_batch=1, sizes_kept=3)
        for i in range(5):  # one at a time: five batches of one
            await batcher.submit(i)
        await batcher.close()
        return list(batcher.batch_sizes)

    assert _run(main()) == [1, 1, 1]


def test_a_batch_function_that_loses_results_is_an_error_not_a_shifted_answer():
    async def main():
        batcher = MicroBatcher(lambda items: items[:-1] if len(items) > 1 else [], max_batch=4)
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        await batcher.close()
        return results

    results = _run(main())
    assert all(isinstance(r, RuntimeError) and "returned 0 results for 1 items" in str(r) for r in results)


async def _cancel_other_tasks() -> None:
    """Cancel and await every task of the running loop but this one (a stale gathering task).

    Run inside the loop: `asyncio.gather` called outside one looks up the thread's current
    loop, which an earlier test in the same process may have unset."""
    stale = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in stale:
        task.cancel()
    await asyncio.gather(*stale, return_exceptions=True)


def test_a_batcher_keeps_working_in_a_new_event_loop():
    batcher = MicroBatcher(lambda items: [i + 1 for i in items])
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(batcher.submit(1)) == 2
        # The first loop is idle, not closed: its gathering task is still pending there.
        assert second.run_until_complete(asyncio.wait_for(batcher.submit(2), 5)) == 3
    finally:
        second.run_until_complete(batcher.close())
        first.run_until_complete(_cancel_other_tasks())
        first.close()
        second.close()


@pytest.mark.parametrize("kwargs, message", [({"max_batch": 0}, "max_batch"),
                                             ({"max_delay_ms": -1}, "max_delay_ms")])
def test_settings_out_of_range_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MicroBatcher(lambda items: items, **kwargs)
