"""Rows of `make bench-peers` results for the tests: load results, peer cases, grid points."""
from __future__ import annotations

from bench import load
from bench.peers import run as peers


def result(rps: float, c: int = 16, p50: float = 1.0, p99: float = 2.0) -> load.LoadResult:
    """One wrk run's figures, every request answered 200."""
    return load.LoadResult(concurrency=c, requests=int(rps), duration_s=1.0, rps=rps, p50_ms=p50, p90_ms=p50,
                           p99_ms=p99, max_ms=p99, statuses={"200": int(rps)})


def rows() -> list[dict]:
    """/predictions cases of three servers at c=1 and c=64: best peer fastapi at c=1 (p50 1.9 ms),
    fastapi-batched at c=64 (6,000 req/s)."""
    figures = {  # server: {c: (rps, p50, p99)}
        "torchserve": {1: (150, 6.5, 8.0), 64: (9000, 7.0, 12.0)},
        "fastapi": {1: (500, 1.9, 3.0), 64: (2000, 30.0, 60.0)},
        "fastapi-batched": {1: (450, 2.1, 2.5), 64: (6000, 10.0, 15.0)},
    }
    return [peers.case_row(s, result(r, c, p50, p99)) for s, by_c in figures.items()
            for c, (r, p50, p99) in by_c.items()]


def grid(points: dict) -> list[dict]:
    """points: (batchSize, maxBatchDelay) -> (p50 at c=1, req/s at c=64)."""
    out = []
    for (b, d), (p50, rps) in points.items():
        out.append(dict(peers.case_row("torchserve", result(100, 1, p50)), batchSize=b, maxBatchDelay=d))
        out.append(dict(peers.case_row("torchserve", result(rps, 64, 5.0)), batchSize=b, maxBatchDelay=d))
    return out
