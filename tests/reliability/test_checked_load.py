"""The reliability suite's checked client against small fake servers: every answer kept in
order, an answer meant for another request caught, retries, a dead server."""
from __future__ import annotations

import json
import threading
import time

import pytest

from bench import headlines
from serving.server import free_port
from tests.helpers import fake_http
from tests.helpers.checked_load import CheckedLoad, percentile


@pytest.fixture
def http_echo():
    with fake_http.serve(fake_http.EchoHandler, auth="Bearer k") as (url, _):
        yield f"{url}/predictions/echo"


class _AnswersOneRequestTwice(fake_http.EchoHandler):
    """Sends the answer to the server's 5th request twice on its keep-alive connection, as
    TorchServe 0.12 can after a scale-down (serve it with seen=0, lock=threading.Lock())."""

    def answer(self, status: int, body: object) -> None:
        with self.server.lock:
            self.server.seen += 1
            twice = self.server.seen == 5
        super().answer(status, body)
        if twice:
            time.sleep(0.2)  # the copy comes later, once the client has sent its next request
            super().answer(status, body)


class _FailsTheThirdRequest(fake_http.EchoHandler):
    """Answers the server's 3rd request with TorchServe's 500 "Worker died." (serve it with
    seen=0, lock=threading.Lock())."""

    def answer(self, status: int, body: object) -> None:
        with self.server.lock:
            self.server.seen += 1
            third = self.server.seen == 3
        if third:
            self.send_json(500, {"code": 500, "type": "InternalServerException", "message": "Worker died."})
        else:
            super().answer(status, body)


def test_checked_load_refuses_other_hosts():
    with pytest.raises(ValueError):
        CheckedLoad("http://10.0.0.1:8080/x")


def test_checked_load_keeps_every_answer_in_order(http_echo):
    requests_ = [(json.dumps({"text": t}).encode(), "application/json") for t in headlines.SAMPLE]
    client = CheckedLoad(http_echo, headers={"Authorization": "Bearer k"})
    outcomes = client.run(requests_, concurrency=4, total=50)
    assert [o.index for o in outcomes] == list(range(50)) and client.completed == 50
    for o in outcomes:
        assert o.status == 200 and o.json() == {"text": headlines.SAMPLE[o.index % len(headlines.SAMPLE)]}
        assert o.latency_s > 0  # measured from send to answer, not left at 0


def test_checked_load_catches_an_answer_meant_for_the_previous_request():
    with fake_http.serve(_AnswersOneRequestTwice, auth="Bearer k", seen=0, lock=threading.Lock()) as (url, _):
        client = CheckedLoad(f"{url}/x", headers={"Authorization": "Bearer k"})
        outcomes = client.run([(str(i).encode(), "text/plain") for i in range(12)], concurrency=1)
    assert [o.index for o in outcomes if o.misdelivered] == [5]
    late = outcomes[5]
    assert late.status == 200 and late.body == b"4" and late.echoed_id == "4"
    # The connection out of step is replaced: every later answer is its own request's again.
    assert late.connection == 0 and {o.connection for o in outcomes[6:]} == {1}
    assert all(o.body == str(o.index).encode() for o in outcomes if not o.misdelivered)


# The copy of request 4's answer lands on request 5; the third request is index 2.
@pytest.mark.parametrize("server, failed_try", [(_AnswersOneRequestTwice, 5), (_FailsTheThirdRequest, 2)])
def test_a_retrying_checked_load_ends_with_every_right_answer_and_keeps_the_failed_try(server, failed_try):
    with fake_http.serve(server, auth="Bearer k", seen=0, lock=threading.Lock()) as (url, _):
        client = CheckedLoad(f"{url}/x", headers={"Authorization": "Bearer k"}, retries=1)
        outcomes = client.run([(str(i).encode(), "text/plain") for i in range(8)], concurrency=1)
    assert all(o.status == 200 and o.body == str(o.index).encode() and not o.misdelivered
               for o in outcomes)
    retried = [o for o in outcomes if o.earlier]
    assert [o.index for o in retried] == [failed_try]
    (first,) = retried[0].earlier
    assert first.needs_retry and first.connection < retried[0].connection
    assert len(retried[0].tries()) == 2


def test_checked_load_refuses_a_negative_retry_count():
    with pytest.raises(ValueError, match="retries must be 0 or more"):
        CheckedLoad("http://127.0.0.1:9/x", retries=-1)


def test_checked_load_reports_a_dead_server_as_failed_requests():
    port = free_port()  # nothing listens there
    outcomes = CheckedLoad(f"http://127.0.0.1:{port}/x", timeout_s=2).run([(b"x", "text/plain")], 2,
                                                                              total=4)
    assert len(outcomes) == 4 and all(o.status == 0 and o.error for o in outcomes)


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([], 50) == 0.0
