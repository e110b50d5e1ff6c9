"""What every benchmark shares, written once: where the figures come from, a temporary root
kept for its logs, one measured `wrk` run, rounds in alternating order (best kept), answer
comparison, and the result files. The reliability suite (tests/reliability/) uses them too.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from bench import load
from training.config import available_cores

S = TypeVar("S", bound="LoadSettings")
# Served answers are rounded to 6 digits, and a different batch composition may move the last
# ones: probabilities within this of the reference are the same answer.
PROBABILITY_TOLERANCE = 1e-4
# Integrated Gradients scores are sums over 8 steps: the same order of rounding noise.
SCORE_TOLERANCE = 1e-3


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what `platform` knows, e.g. on macOS)."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages: far above the core count means noisy figures."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """What the figures were measured on, and how busy it was when the run started."""
    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "cores_usable": available_cores(),
            "platform": platform.platform(), "python": platform.python_version(),
            "date": dt.date.today().isoformat(), "loadavg_start": loadavg()}


def measured_on(m: dict) -> str:
    """Where a run's figures come from, for its report: the machine `machine()` described and
    its load at the start and the end."""
    return (f"on {m['cpus']} CPUs ({m.get('cpu_model', 'unknown')}, {m['platform']}); load average "
            f"{m['loadavg_start']} at start, {m.get('loadavg_end')} at end")


@contextmanager
def temp_root(prefix: str) -> Iterator[Path]:
    """A new temporary directory for a run's servers and archives (stop them inside the block):
    removed when the block ends normally, kept for its logs (and its path printed) when it raises."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    except BaseException:
        print(f"kept {root} for its logs")
        raise
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class LoadSettings:
    """What every load bench shares: what it serves, where it writes, how long and hard it loads."""

    mar: Path
    artifacts: Path
    config: Path
    out_dir: Path
    data: Path | None = None
    duration_s: float = 5.0
    warmup_s: float = 1.0
    # Each comparison is run `rounds` times, in alternating order, and the best round of each
    # run is kept: a neighbour's burst then hits one round, not the ratio.
    rounds: int = 2
    max_requests: int = 100_000
    concurrencies: tuple[int, ...] = (1, 16, 64)

    @classmethod
    def quick(cls: type[S], **kwargs) -> S:
        """A short run to check the command works (figures are rough)."""
        return cls(**{"duration_s": 2.0, "warmup_s": 0.5, "rounds": 1, **kwargs})


@dataclass(frozen=True)
class Target:
    """One URL under load; `auth` gives its Authorization header at each use (keys can be renewed)."""

    name: str
    url: str
    auth: Callable[[], str | None] = lambda: None


def measure(target: Target, bodies: Sequence[str], concurrency: int,
            settings: LoadSettings) -> load.LoadResult:
    """A warm-up run (when `settings.warmup_s`), then the measured `wrk` run; prints one line."""
    if settings.warmup_s > 0:
        load.run_wrk(target.url, bodies, concurrency, settings.warmup_s, settings.max_requests, target.auth())
    result = load.run_wrk(target.url, bodies, concurrency, settings.duration_s, settings.max_requests,
                          target.auth())
    bad = {code: n for code, n in result.statuses.items() if not code.startswith("2")}
    if bad or result.socket_errors:
        print(f"  warning: {target.name} c={concurrency}: statuses {bad}, "
              f"socket errors {result.socket_errors}")
    print(f"  {target.name:<44} c={concurrency:<3} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms"
          f"  p99 {result.p99_ms:7.2f} ms", flush=True)
    return result


def best_of_rounds(runs: dict[str, Callable[[], load.LoadResult]], rounds: int) -> dict[str, load.LoadResult]:
    """Run each measurement `rounds` times in alternating order; keep each one's best round."""
    names = list(runs)
    best: dict[str, load.LoadResult] = {}
    for round_ in range(rounds):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            result = runs[name]()
            if name not in best or result.rps > best[name].rps:
                best[name] = result
    return {name: best[name] for name in names}


def measure_rounds(targets: Sequence[Target], bodies: Sequence[str], concurrency: int,
                   settings: LoadSettings, rounds: int | None = None) -> list[load.LoadResult]:
    """Each target measured `rounds` times (default `settings.rounds`), alternating; the best
    round of each, in the targets' order (their names must differ)."""
    runs = {t.name: partial(measure, t, bodies, concurrency, settings) for t in targets}
    return list(best_of_rounds(runs, rounds or settings.rounds).values())


def reference_answers(artifacts: Path, texts: Sequence[str]) -> dict[str, dict]:
    """The in-process Predictor's answer to each distinct text: what a served answer must equal."""
    from model.predictor import Predictor  # torch: only when answers are checked
    unique = list(dict.fromkeys(texts))
    return dict(zip(unique, Predictor.from_dir(artifacts).predict(unique), strict=True))


def disagreement(expected: object, got: object, explanations: bool = False,
                 same: Sequence[str] = ("label",)) -> str | None:
    """Why `got` is not the same answer as `expected` (None when it is): the keys in `same`
    exactly; the probabilities within PROBABILITY_TOLERANCE (an abstention has none: both or
    neither); with `explanations` also tokens, explained class and scores (SCORE_TOLERANCE) unless
    the model abstained. Other keys are not compared: a peer need not add the handler's extras."""
    if not isinstance(expected, dict) or not isinstance(got, dict):
        return f"not an answer object: {str(got)[:120]}"
    for key in same:
        if got.get(key) != expected.get(key):
            return f"{key} {got.get(key)!r} instead of {expected.get(key)!r}"
    want, have = expected.get("probabilities"), got.get("probabilities")
    if (want is None) != (have is None):
        return f"probabilities {have} instead of {want}"
    want, have = want or {}, have or {}
    if set(want) != set(have):
        return f"probability labels {sorted(have)} instead of {sorted(want)}"
    off = {k: (have[k], v) for k, v in want.items() if abs(have[k] - v) > PROBABILITY_TOLERANCE}
    if off:
        return f"probabilities differ: {off}"
    if explanations and expected.get("label") is not None:
        for key in ("tokens", "explained_class"):
            if got.get(key) != expected.get(key):
                return f"{key} {got.get(key)!r} instead of {expected.get(key)!r}"
        scores, reference = got.get("token_scores") or [], expected.get("token_scores") or []
        if len(scores) != len(reference) or any(abs(a - b) > SCORE_TOLERANCE
                                                for a, b in zip(scores, reference, strict=True)):
            return f"token_scores {scores} instead of {reference}"
    return None


def write(out_dir: Path, stem: str, results: dict, markdown: str) -> list[Path]:
    """`<out_dir>/<stem>.json` (every figure) and `<stem>.md` (the tables); returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(markdown.rstrip("\n") + "\n")
    return [json_path, md_path]
