"""NewsClient against a fake inference API: answers are accepted only with their own
correlation id, and refusals carry TorchServe's message."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

import fake_http
from client.api import CORRELATION_HEADER, ClientError, NewsClient
from handler import request_parsing
from serving.properties import Endpoints

ANSWER = [{"label": "Sports", "probabilities": {"Sports": 0.9}}]


class _Inference(BaseHTTPRequestHandler):
    """Answers POSTs with ANSWER; `server.echo` decides the correlation id sent back
    ("same", "other" or "none"); `server.status` the status."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.sent.append(self.headers.get(CORRELATION_HEADER))
        payload = json.dumps(ANSWER if self.server.status == 200 else {"message": "no such model"}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        echo = {"same": self.headers.get(CORRELATION_HEADER), "other": "someone-else", "none": None}
        if echo[self.server.echo]:
            self.send_header(CORRELATION_HEADER, echo[self.server.echo])
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake():
    with fake_http.serve(_Inference, sent=[], echo="same", status=200) as (url, httpd):
        client = NewsClient(Endpoints(inference=url, management=url, metrics=url))
        client._headers = lambda kind: {"Authorization": "Bearer k"}  # no key file needed here
        yield client, httpd


def test_the_client_and_the_handler_agree_on_the_header():
    assert CORRELATION_HEADER == request_parsing.CORRELATION_HEADER


def test_an_answer_with_its_own_id_is_returned_and_ids_are_fresh_per_call(fake):
    client, httpd = fake
    assert client.predict(["Yankees win"]) == ANSWER
    assert client.explain(["Yankees win"]) == ANSWER
    assert len(set(httpd.sent)) == 2 and all(httpd.sent)


@pytest.mark.parametrize("echo", ["other", "none"])
def test_an_answer_for_another_request_is_refused(fake, echo):
    client, httpd = fake
    httpd.echo = echo
    with pytest.raises(ClientError, match="belongs to another request.*send the request again"):
        client.predict(["Yankees win"])


def test_a_refusal_reports_status_and_message_without_checking_the_id(fake):
    client, httpd = fake
    httpd.echo, httpd.status = "none", 404
    with pytest.raises(ClientError, match="^HTTP 404: no such model$"):
        client.predict(["Yankees win"])
