"""A worker killed (kill -9) during load: TorchServe replaces it; a plain client (no retries:
each request's first try) loses only what was in flight on it, a retrying client (NewsClient's
back-off) loses nothing, and every answer is the request's own and right."""
from __future__ import annotations

import os
import signal
import time

import pytest

from bench import served_models
from serving.polling import wait_for
from serving.properties import MODEL_NAME
from tests.helpers import traffic

pytestmark = [pytest.mark.integration, pytest.mark.soak]

# A plain client's loss while the worker is replaced, as a share of the requests answered
# in that window.
CRASH_FAILURE_LIMIT = 0.01


def crash_under_load(ts, texts, reference, sizes, workers: int) -> dict:
    """kill -9 one worker during load; what a plain and a retrying client lose while TorchServe
    restarts it (one load: each request's first try is the plain client's)."""
    client = traffic.predictions(ts, retries=sizes.client_retries, backoff=True)
    with traffic.in_background(client, texts, sizes.crash_concurrency, sizes.case_deadline_s) as box:
        wait_for(lambda: client.completed >= sizes.crash_warmup, 60, "warm-up requests")
        victim = served_models.worker_pids(ts, MODEL_NAME)[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # Recovered: the configured number of READY workers again, none of them the victim.
        wait_for(lambda: traffic.healthy_with(ts, workers)
                 and victim not in served_models.worker_pids(ts, MODEL_NAME), 120,
                 "the killed worker's replacement")
        recovered_at = time.monotonic()
        done_at_recovery = client.completed
        wait_for(lambda: client.completed >= done_at_recovery + sizes.crash_after_recovery, 60,
                 "requests after recovery")
    outcomes = box["outcomes"]
    check = traffic.check_answers(outcomes, texts, reference)
    window = [o.first_try for o in outcomes if killed_at <= o.first_try.finished <= recovered_at]
    failed_window = sum(t.status != 200 for t in window)
    return {
        "workers": workers, "requests": len(outcomes), "concurrency": sizes.crash_concurrency,
        "killed_pid": victim, "recovery_s": round(recovered_at - killed_at, 2),
        "requests_during_recovery": len(window), "plain_failed_during_recovery": failed_window,
        **traffic.lost(outcomes), **check.as_dict(),
        "plain_failed_share_during_recovery": round(failed_window / len(window), 5) if window else None,
        "failure_errors": traffic.failure_errors([t for o in outcomes for t in o.tries()]),
        "workers_after": ts.ready_workers(MODEL_NAME), "healthy_after": ts.ping(),
    }


def test_a_killed_worker_is_replaced_and_a_retrying_client_loses_nothing(
        served, headlines_sent, reference, soak_sizes, soak_archive, record):
    workers = soak_archive.workers
    figures = crash_under_load(served, headlines_sent, reference, soak_sizes, workers)
    record("crash", figures)
    assert figures["misdelivered"] == 0 and figures["wrong"] == 0, figures
    assert figures["healthy_after"] and figures["workers_after"] == workers
    assert figures["killed_pid"] not in served_models.worker_pids(served, MODEL_NAME)
    # A plain client loses only requests in flight on the killed worker (one batch at most),
    # all while it is replaced; the retrying client loses none.
    batch = int(soak_archive.model_config.get("batchSize", 1))
    assert figures["plain_lost"] <= batch, figures["failure_errors"]
    assert figures["plain_lost"] == figures["plain_failed_during_recovery"]
    window = max(figures["requests_during_recovery"], 1)
    assert figures["plain_failed_during_recovery"] <= CRASH_FAILURE_LIMIT * window, figures
    assert figures["retrying_lost"] == 0 and figures["failed"] == 0, figures["retrying_statuses"]


@pytest.mark.usefixtures("full_size_only")
def test_a_crash_at_other_worker_counts_gives_no_wrong_answer(
        served, headlines_sent, reference, soak_sizes, soak_archive, record):
    """Informative: how much a plain client loses at 1 and 4 workers (scaled through the
    management API). With 1 worker a crash leaves nothing to answer for seconds, so losses are
    expected; what must hold is that no answer is wrong or another request's."""
    runs = {}
    try:
        for count in soak_sizes.crash_worker_counts:
            served.scale(MODEL_NAME, count)
            wait_for(lambda count=count: traffic.healthy_with(served, count), 120, f"{count} READY workers")
            run = crash_under_load(served, headlines_sent, reference, soak_sizes, count)
            runs[count] = {k: run[k] for k in (
                "requests", "recovery_s", "requests_during_recovery", "plain_lost", "plain_lost_share",
                "plain_statuses", "retrying_lost", "retrying_statuses", "wrong", "misdelivered")}
            record("crash_workers", runs[count], part=f"{count} workers")
    finally:
        served.scale(MODEL_NAME, soak_archive.workers)
    for count, run in runs.items():
        assert run["wrong"] == run["misdelivered"] == 0, (count, run)
