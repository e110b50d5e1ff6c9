"""The one poll-until helper: the server, the benchmarks and the tests wait with it."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.05,
             not_yet: tuple[type[BaseException], ...] = (),
             gone: Callable[[], str | None] = lambda: None) -> T:
    """Call `check` every `interval_s` until it returns a true value, and return that value;
    an exception of a `not_yet` type counts as "not yet". TimeoutError after `timeout_s`;
    RuntimeError at once when `gone()` returns a reason to stop (e.g. the server exited)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
            if value:
                return value
        except not_yet:
            pass
        reason = gone()
        if reason:
            raise RuntimeError(f"{reason} while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
