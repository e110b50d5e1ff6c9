"""How big the reliability suite runs, and on which archive: its sizes and its pytest options.

    pytest tests                                   # quick sizes on the tiny test archive (make test)
    pytest tests -m soak --soak-size full \
        --soak-mar model_store/news_cnn.mar --soak-artifacts artifacts \
        --soak-out bench/soak.json                 # what `make soak` runs
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

SIZE_NAMES = ("quick", "full")


@dataclass(frozen=True)
class SoakSizes:
    """How much each case sends (full: `make soak`; quick: `make test`)."""

    name: str = "full"
    sustained_requests: int = 20_000
    sustained_concurrency: int = 32
    crash_concurrency: int = 16
    crash_warmup: int = 300
    crash_after_recovery: int = 500
    # The crash and stop cases' client retries like NewsClient: up to this many times, after
    # a jittered exponential back-off; its first tries are what a plain client gets.
    client_retries: int = 4
    crash_worker_counts: tuple[int, ...] = (1, 4)
    stop_concurrency: int = 8
    stop_warmup: int = 300
    scaling_concurrency: int = 16
    # Requests between two scalings: at ~2,000 req/s about 1.5 s, so that the steps' windows
    # (each with 1 s of slack for late answers) never overlap and failures are attributed.
    scaling_between: int = 3000
    barrage_good: int = 200
    barrage_random: int = 150
    barrage_concurrency: int = 8
    case_deadline_s: float = 300.0
    # The scaling case's client retries a failed try (no answer within scaling_timeout_s, a
    # 5xx, or another request's answer) up to scaling_retries times on a new connection, as
    # NewsClient does. Answers normally take well under 0.1 s; a request TorchServe drops at
    # a scale-down is never answered.
    scaling_retries: int = 2
    scaling_timeout_s: float = 5.0
    # The bounded-memory cases send the largest accepted request for this long (full size only).
    memory_seconds: float = 20.0

    @classmethod
    def named(cls, name: str) -> SoakSizes:
        """The full sizes, or the quick ones: small counts for `make test` (a minute or so)."""
        full = cls()
        if name == "full":
            return full
        return replace(full, name="quick", sustained_requests=1_000, sustained_concurrency=16,
                       crash_warmup=100, crash_after_recovery=100, scaling_between=2500, barrage_good=40,
                       case_deadline_s=120.0)


def add_options(parser: pytest.Parser) -> None:
    """The suite's command-line options (registered by tests/conftest.py's pytest_addoption)."""
    group = parser.getgroup("soak", "reliability suite (tests/reliability/, make soak)")
    group.addoption("--soak-size", choices=SIZE_NAMES, default="quick",
                    help="quick: make test's counts; full: make soak's (default: quick)")
    group.addoption("--soak-mar", default=None,
                    help="the archive to serve (default: the tiny test artifacts, archived with "
                         "the project's model-config)")
    group.addoption("--soak-artifacts", default=None,
                    help="the training run --soak-mar was archived from: the in-process reference")
    group.addoption("--soak-data", default=None,
                    help="CSV with a title column: the headlines sent (default: the test split "
                         "<soak-artifacts>/test.csv, else a built-in sample)")
    group.addoption("--soak-out", default=None,
                    help="write every case's figures to this JSON file, and a Markdown table "
                         "beside it (.md)")
