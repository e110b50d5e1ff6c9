"""Wall time per step of a training run, so a slow run says where its time went.

Steps are named "<experiment>/<step>" inside an experiment ("word2vec/vectors",
"glove_finetuned/epochs") and plainly outside ("read", "preprocess"). A step entered twice
adds up. The totals go into metrics.json and are printed at the end of the run.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

# Written into the artifact directory by every run; `python -m bench.training_scale` reads it.
STEP_SECONDS = "step_seconds.json"


class StepTimer:
    """Accumulates wall seconds per named step, in the order the steps first ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the body of a `with` block under `name` (added to earlier runs of `name`)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def add(self, seconds: dict[str, float]) -> None:
        """Add steps timed elsewhere (e.g. in a worker process) to these totals."""
        for name, value in seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + value

    def rounded(self, digits: int = 2) -> dict[str, float]:
        """The totals rounded for JSON."""
        return {name: round(s, digits) for name, s in self.seconds.items()}

    def table(self) -> str:
        """One line per step: seconds and share of the timed total, in run order."""
        total = sum(self.seconds.values()) or 1.0
        width = max((len(n) for n in self.seconds), default=4)
        return "\n".join(f"  {name.ljust(width)}  {s:7.1f} s  {s / total:6.1%}"
                         for name, s in self.seconds.items())

