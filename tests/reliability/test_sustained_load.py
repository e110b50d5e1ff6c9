"""Sustained load: many predictions at high concurrency get no error, every answer the
request's own and equal to the in-process model's, and the workers' memory stays flat."""
from __future__ import annotations

import time

import pytest

from bench import served_models
from serving.properties import MODEL_NAME
from tests.helpers import traffic
from tests.helpers.checked_load import percentile

pytestmark = [pytest.mark.integration, pytest.mark.soak]

MEMORY_GROWTH_LIMIT = 0.10


def test_sustained_load_all_right_memory_flat(served, headlines_sent, reference, soak_sizes, record):
    sizes, texts = soak_sizes, headlines_sent
    client = traffic.predictions(served)
    warm = client.run(traffic.json_requests(texts), sizes.sustained_concurrency,
                      total=min(500, sizes.sustained_requests))
    before = served_models.worker_rss(served, MODEL_NAME)
    start = time.monotonic()
    outcomes = client.run(traffic.json_requests(texts), sizes.sustained_concurrency,
                          total=sizes.sustained_requests, deadline_s=sizes.case_deadline_s)
    seconds = time.monotonic() - start
    after = served_models.worker_rss(served, MODEL_NAME)
    check = traffic.check_answers(outcomes, texts, reference)
    growth = (sum(after.values()) - sum(before.values())) / sum(before.values()) if before else None
    latencies = [o.latency_s * 1000 for o in outcomes]
    figures = {
        "requests": len(outcomes), "planned": sizes.sustained_requests,
        "concurrency": sizes.sustained_concurrency, "seconds": round(seconds, 1),
        "rps": round(len(outcomes) / seconds, 1), **check.as_dict(),
        "warmup_failed": sum(o.status != 200 for o in warm),
        "statuses": traffic.statuses(outcomes),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "worker_rss_mib_before": {str(k): round(v, 1) for k, v in before.items()},
        "worker_rss_mib_after": {str(k): round(v, 1) for k, v in after.items()},
        "memory_growth": round(growth, 4) if growth is not None else None,
        "same_worker_pids": sorted(before) == sorted(after),
    }
    record("sustained", figures)
    assert figures["requests"] == sizes.sustained_requests
    assert check.failed == 0, figures["statuses"]
    assert check.misdelivered == 0 and check.wrong == 0, check.examples
    assert figures["same_worker_pids"]
    assert growth is not None and growth < MEMORY_GROWTH_LIMIT, figures
