"""Worker memory stays bounded under the largest requests the handler accepts.

The largest accepted request is max_texts (64) headlines of max_chars (1,000) characters,
each character one that accent folding turns into a word of its own ("¼" -> "1⁄4"). Each
case gets a server of its own (the archive's worker count and batch settings), sends that
request from many clients at once for `memory_seconds`, and samples the resident memory
summed over the workers. It passes when every request got 200 (no 5xx, no dropped
connection), no worker was restarted, and the peak growth over the idle workers stays
within the case's limit. Full size only (`make soak`): it is about the trained archive's
cost; the unit tests of the token cap and the chunked passes guard the mechanism in
`make test`.
"""
from __future__ import annotations

import json
import threading
import time

import pytest

from bench import served_models
from serving.properties import MODEL_NAME
from serving.server import TorchServe
from tests.helpers import traffic
from tests.helpers.checked_load import CheckedLoad

pytestmark = [pytest.mark.integration, pytest.mark.soak]

# (path, concurrent clients, growth limit in MiB over the idle workers, summed).
CASES = [("predictions", 32, 600), ("explanations", 8, 1024)]
# The load stops early, and the case fails, once growth passes this: the machine may be
# shared, and a handler without the token cap and the chunking grows by more than 5 GB here.
SAFETY_MIB = 4096
SAMPLE_S = 0.2
EXPANDING = "¼"  # NFKD: "1⁄4", two words per character, joined with the next one's


def largest_request(max_texts: int, max_chars: int) -> bytes:
    """The JSON body of the largest request the handler settings accept."""
    return json.dumps({"texts": [EXPANDING * max_chars] * max_texts}).encode()


class RssSampler(threading.Thread):
    """Samples the workers' resident memory (MiB, summed) until stopped; calls `over` once
    the growth over `base` passes SAFETY_MIB."""

    def __init__(self, server: TorchServe, base: float, over) -> None:
        super().__init__(daemon=True)
        self.server, self.base, self.over = server, base, over
        self.peak = base
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            self.peak = max(self.peak, sum(served_models.worker_rss(self.server, MODEL_NAME).values()))
            if self.peak - self.base > SAFETY_MIB:
                self.over()


@pytest.mark.parametrize("path, concurrency, limit_mib", CASES, ids=[c[0] for c in CASES])
def test_the_largest_requests_keep_worker_memory_bounded(full_size_only, fresh_server, soak_archive,
                                                         soak_sizes, record, path, concurrency, limit_mib):
    ts = fresh_server
    load = CheckedLoad(f"{ts.endpoints.inference}/{path}/{MODEL_NAME}",
                       headers=lambda: ts.keys().headers("inference"), timeout_s=90)
    # Warm up every worker with ordinary headlines, so the base is the workers at rest.
    warm = load.run(traffic.json_requests(["Oil prices rise as stocks fall"]),
                    concurrency=soak_archive.workers, total=8)
    assert {o.status for o in warm} == {200}
    pids = served_models.worker_pids(ts, MODEL_NAME)
    base = sum(served_models.worker_rss(ts, MODEL_NAME).values())
    sampler = RssSampler(ts, base, load.stop.set)
    sampler.start()
    body = largest_request(soak_archive.max_texts, soak_archive.max_chars)
    started = time.monotonic()
    outcomes = load.run([(body, "application/json")], concurrency, total=10**6,
                        deadline_s=soak_sizes.memory_seconds)
    elapsed = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    figures = {"concurrency": concurrency, "seconds": round(elapsed, 1), "requests": len(outcomes),
               "statuses": traffic.statuses(outcomes), "rss_mib_idle": round(base),
               "rss_mib_peak": round(sampler.peak), "growth_mib": round(sampler.peak - base),
               "limit_mib": limit_mib,
               "workers_restarted": served_models.worker_pids(ts, MODEL_NAME) != pids,
               "stopped_at_safety_limit": load.stop.is_set()}
    record("bounded_memory", figures, part=path)
    assert outcomes and {o.status for o in outcomes} == {200}, figures
    assert not figures["workers_restarted"], figures
    assert sampler.peak - base <= limit_mib, figures
    assert len(outcomes[0].json()) == soak_archive.max_texts  # one answer per headline
