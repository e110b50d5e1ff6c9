"""Stopping a server under load behind a balancer that polls its readiness URL: gracefully
(readiness false, wait for in-flight requests), neither a plain nor a retrying client loses a
request the server accepted; at once, a plain client loses what was in flight."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from serving.polling import wait_for
from tests.helpers import traffic

pytestmark = [pytest.mark.integration, pytest.mark.soak]

# What the simulated balancer does: poll the readiness URL this often.
BALANCER_POLL_S = 0.5


class Balancer:
    """A load balancer's view of one server: polls its key-less readiness URL every
    BALANCER_POLL_S and keeps it in rotation only while the answer is 200."""

    def __init__(self, ready_url: str) -> None:
        self.ready_url = ready_url
        self.in_rotation = True
        self.left_rotation_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(BALANCER_POLL_S):
            try:
                ok = requests.get(self.ready_url, timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            if not ok and self.in_rotation:
                self.in_rotation, self.left_rotation_at = False, time.monotonic()

    def __enter__(self) -> Balancer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def stop_under_load(ts, texts, reference, sizes, drain: bool) -> dict:
    """Stop `ts` under load behind a Balancer: gracefully (`drain`) or at once. Counts the
    accepted requests a plain client (first try) and a retrying client lose; requests the
    balancer sent elsewhere are not lost."""
    headers = ts.keys().headers("inference")  # the key file goes with the server
    with Balancer(f"{ts.endpoints.health}/ready") as balancer:
        client = traffic.predictions(ts, retries=sizes.client_retries, backoff=True, headers=headers,
                                     route=lambda: balancer.in_rotation)
        with traffic.in_background(client, texts, sizes.stop_concurrency, sizes.case_deadline_s) as box:
            wait_for(lambda: client.completed >= sizes.stop_warmup, 60, "warm-up requests")
            started = time.monotonic()
            report = ts.drain(notice_s=2 * BALANCER_POLL_S) if drain else None
            ts.stop()
            stopped = time.monotonic()
            wait_for(lambda: not balancer.in_rotation, 10, "the balancer to leave the server")
    outcomes = box["outcomes"]
    check = traffic.check_answers([o for o in outcomes if not o.rerouted], texts, reference)
    return {"drain": drain, "requests": len(outcomes), "concurrency": sizes.stop_concurrency,
            "stop_s": round(stopped - started, 2), "drain_report": report,
            "left_rotation_after_s": round(balancer.left_rotation_at - started, 2),
            "rerouted": sum(o.rerouted for o in outcomes), **traffic.lost(outcomes),
            "wrong": check.wrong, "misdelivered": check.misdelivered,
            "failure_errors": traffic.failure_errors([t for o in outcomes for t in o.tries()
                                                      if not t.rerouted])}


def test_graceful_stop_under_load_loses_no_accepted_request(
        fresh_server, headlines_sent, reference, soak_sizes, record):
    figures = stop_under_load(fresh_server, headlines_sent, reference, soak_sizes, drain=True)
    record("stop", figures, part="graceful")
    assert figures["drain_report"]["quiet"], figures["drain_report"]
    assert figures["left_rotation_after_s"] < 2 * BALANCER_POLL_S + 1.0
    assert figures["plain_lost"] == 0 and figures["retrying_lost"] == 0, figures["failure_errors"]
    assert figures["rerouted"] > 0 and figures["wrong"] == figures["misdelivered"] == 0
    assert fresh_server.pid() is None


@pytest.mark.usefixtures("full_size_only")
def test_an_immediate_stop_gives_no_wrong_answer(fresh_server, headlines_sent, reference, soak_sizes, record):
    """Informative: what a stop without the drain costs a plain client (the requests in
    flight); every answer that did come must still be the request's own and right."""
    figures = stop_under_load(fresh_server, headlines_sent, reference, soak_sizes, drain=False)
    record("stop", figures, part="immediate")
    assert figures["wrong"] == figures["misdelivered"] == 0, figures
