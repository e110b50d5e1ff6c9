"""Scaling 1 -> 4 -> 1 workers through the management API during load: a client that retries
(as NewsClient does) loses nothing, and every try TorchServe failed is counted and explained."""
from __future__ import annotations

import time
from contextlib import suppress

import pytest

from serving.management import ScaleError
from serving.polling import wait_for
from serving.properties import MODEL_NAME
from tests.helpers import traffic

pytestmark = [pytest.mark.integration, pytest.mark.soak]


def scale_under_load(ts, texts, reference, sizes, workers: int) -> dict:
    """Scale to 1, then 4, then 1 worker while a retrying client sends predictions; the
    server ends with `workers` again."""
    ts.scale(MODEL_NAME, 1)
    client = traffic.predictions(ts, timeout_s=sizes.scaling_timeout_s, retries=sizes.scaling_retries)
    steps = []
    try:
        with traffic.in_background(client, texts, sizes.scaling_concurrency, sizes.case_deadline_s) as box:
            for target in (4, 1):
                mark = client.completed
                wait_for(lambda mark=mark: client.completed >= mark + sizes.scaling_between, 60,
                         "requests between scalings")
                start = time.monotonic()
                answer = ts.scale(MODEL_NAME, target)
                returned = time.monotonic()
                # "synchronous" scaling can return before the last new worker is READY.
                with suppress(TimeoutError):
                    wait_for(lambda target=target: ts.ready_workers(MODEL_NAME) == target, 60,
                             f"{target} READY workers")
                end = time.monotonic()
                steps.append({"workers": target, "api_attempts": answer["attempts"],
                              "api_seconds": round(returned - start, 2),
                              "ready_seconds": round(end - start, 2),
                              "ready_after": ts.ready_workers(MODEL_NAME), "window": (start, end)})
            mark = client.completed
            wait_for(lambda: client.completed >= mark + sizes.scaling_between, 60, "requests after scaling")
    except BaseException:
        with suppress(ScaleError):  # best effort: the first error is the one to report
            ts.scale(MODEL_NAME, workers)
        raise
    ts.scale(MODEL_NAME, workers)  # leave the server as configured
    outcomes = box["outcomes"]
    check = traffic.check_answers(outcomes, texts, reference)  # the answers the client ended up with
    # What TorchServe did: every failed try. A stopping worker fails its batch ("Worker
    # died."), drops a job it had taken (never answered, pytorch/serve#1101), or puts jobs it
    # had just answered back in the queue (answered twice: the copy reaches the next request
    # on that connection). Each is attributed to the step it overlapped.
    tries = [t for o in outcomes for t in o.tries()]
    failed_tries = [t for t in tries if t.needs_retry]
    for step in steps:
        start, end = step.pop("window")
        step["failed_tries"] = sum(t.started <= end + 1.0 and t.finished >= start for t in failed_tries)
    return {"requests": len(outcomes), "concurrency": sizes.scaling_concurrency,
            "retries_allowed": sizes.scaling_retries, "steps": steps, **check.as_dict(),
            "statuses": traffic.statuses(outcomes),
            "retried_requests": sum(bool(o.earlier) for o in outcomes),
            "plain_lost": sum(o.first_try.needs_retry for o in outcomes),
            "failed_tries": len(failed_tries),
            "worker_died": sum(t.status in (500, 503, 507) and b"Worker died" in t.body
                               for t in failed_tries),
            "lost_unanswered": sum(t.status == 0 and "timed out" in t.error for t in failed_tries),
            "answered_twice": sum(t.misdelivered for t in failed_tries),
            "answered_twice_examples": [
                {"index": t.index, "echoed_id": t.echoed_id,
                 "previous_on_connection": traffic.previous_index(tries, t)}
                for t in failed_tries if t.misdelivered][:5],
            "failure_errors": traffic.failure_errors(tries)}


def test_scaling_under_load_loses_nothing_for_a_retrying_client(
        served, headlines_sent, reference, soak_sizes, soak_archive, record):
    try:
        figures = scale_under_load(served, headlines_sent, reference, soak_sizes, soak_archive.workers)
    except ScaleError as err:
        pytest.fail(f"scaling failed: {err}\nTorchServe's last warnings:\n"
                    + "\n".join(served.log_warnings()))
    record("scaling", figures)
    assert [s["ready_after"] for s in figures["steps"]] == [4, 1]
    # The client ends with every answer, each its own request's (by correlation id) and equal
    # to the in-process model's.
    assert figures["failed"] == 0, figures["failure_errors"]
    assert figures["misdelivered"] == 0 and figures["wrong"] == 0, figures.get("wrong_examples")
    # Every try TorchServe failed has the signature of its scale-down (pytorch/serve#1101):
    # the stopped worker's batch failed with "Worker died.", a job it had taken dropped
    # (never answered), or jobs it had just answered put back in the queue (answered twice).
    assert figures["failed_tries"] == (figures["worker_died"] + figures["lost_unanswered"]
                                       + figures["answered_twice"]), figures["failure_errors"]
