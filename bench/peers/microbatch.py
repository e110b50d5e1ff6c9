"""A small asyncio micro-batcher: what a careful person puts in front of a model in FastAPI.

One task gathers whatever is queued (up to `max_batch`, waiting at most `max_delay_ms` after
the first item) and runs the batch function on a worker thread, so the event loop keeps reading
requests meanwhile: under load the next batch fills during the current forward pass. If the
batch function raises, each item is tried again alone, so a bad item fails only its own request.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Gathers concurrent `submit` calls into batches for `batch_fn` (see the module doc)."""

    def __init__(self, batch_fn: Callable[[list[T]], Sequence[R]], max_batch: int = 32,
                 max_delay_ms: float = 0.0, sizes_kept: int = 1000) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be 0 or more, not {max_delay_ms}")
        self.batch_fn = batch_fn
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000
        # The sizes of the latest `sizes_kept` batches (tests, diagnostics): bounded, since
        # a peer may run for hours.
        self.batch_sizes: deque[int] = deque(maxlen=sizes_kept)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        # One thread: batches run one after the other, like one TorchServe worker.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="microbatch")

    async def submit(self, item: T) -> R:
        """The result of `batch_fn` for `item`, computed in a batch with its neighbours."""
        loop = asyncio.get_running_loop()
        # A new event loop (a test client's, a restarted server's) gets its own gathering task.
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run())
        future = loop.create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def close(self) -> None:
        """Stop the gathering task and the worker thread."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False)

    async def _gather(self) -> list[tuple[T, asyncio.Future]]:
        """The next batch: the first queued item, then whatever comes within the delay."""
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_delay_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Requests whose clients went away are not worth a forward pass.
            batch = [(item, future) for item, future in await self._gather() if not future.cancelled()]
            if batch:
                self.batch_sizes.append(len(batch))
                await self._answer(loop, batch)

    async def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future]],
                      alone: bool = False) -> None:
        """Each request's result from one call of the batch function; when it raises, each item
        is tried again `alone`, so that an error reaches only its own request."""
        try:
            results = await loop.run_in_executor(self._executor, self._call, [item for item, _ in batch])
        except Exception as err:  # noqa: BLE001 - isolated, then handed to this item's caller
            if not alone:
                for one in batch:
                    await self._answer(loop, [one], alone=True)
            elif not batch[0][1].cancelled():
                batch[0][1].set_exception(err)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.cancelled():
                future.set_result(result)

    def _call(self, items: list[T]) -> list[R]:
        results = list(self.batch_fn(items))
        if len(results) != len(items):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        return results
