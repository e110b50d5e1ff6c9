"""The management API client: scale_workers against a fake management API that answers a
scripted list of statuses."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from client.api import ClientError, NewsClient
from serving import management as management_api
from serving.management import ScaleError, scale_workers
from tests.helpers import fake_http

TORCHSERVE_500 = {"code": 500, "type": "InternalServerException",
                  "message": "Failed to start workers for model news_cnn version: 0.1.0"}


class _Management(fake_http.JSONHandler):
    """Answers each PUT with the next (status, body) of `server.script`; records the calls."""

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        self.server.calls.append({"path": url.path, "query": parse_qs(url.query),
                                  "authorization": self.headers.get("Authorization")})
        self.send_json(*self.server.script.pop(0))


@pytest.fixture
def management(monkeypatch):
    """(url, server): set `server.script` before calling; `server.calls` lists the PUTs."""
    monkeypatch.setattr(management_api, "RESEND_PAUSE_S", 0.0)
    with fake_http.serve(_Management, calls=[], script=[]) as served:
        yield served


def _keys():
    """Headers that change on every call, like a key renewed between two attempts."""
    count = iter(range(100))
    return lambda: {"Authorization": f"Bearer key-{next(count)}"}


def test_a_plain_success_is_one_synchronous_put(management):
    url, httpd = management
    httpd.script = [(200, {"status": "Workers scaled to 3 for model: news_cnn"})]
    answer = scale_workers(url, "news_cnn", 3, _keys(), timeout=50)
    assert answer == {"status": "Workers scaled to 3 for model: news_cnn", "attempts": 1}
    (call,) = httpd.calls
    assert call["path"] == "/models/news_cnn"
    assert call["query"] == {"min_worker": ["3"], "max_worker": ["3"], "synchronous": ["true"],
                             "timeout": ["50"]}


def test_500_and_408_are_resent_with_fresh_headers(management):
    url, httpd = management
    httpd.script = [(500, TORCHSERVE_500), (408, {"message": "Timed out, please resend request."}),
                    (200, {"status": "Workers scaled to 1 for model: news_cnn"})]
    answer = scale_workers(url, "news_cnn", 1, _keys())
    assert answer["attempts"] == 3
    assert [c["authorization"] for c in httpd.calls] == ["Bearer key-0", "Bearer key-1", "Bearer key-2"]


def test_gives_up_after_the_last_attempt_with_torchserves_message(management):
    url, httpd = management
    httpd.script = [(500, TORCHSERVE_500)] * 3
    with pytest.raises(ScaleError, match=r"HTTP 500: Failed to start workers .* \(after 3 attempts\)") as err:
        scale_workers(url, "news_cnn", 1, _keys())
    assert err.value.status == 500 and err.value.attempts == 3 and len(httpd.calls) == 3


def test_other_errors_are_final(management):
    url, httpd = management
    httpd.script = [(404, {"code": 404, "message": "Model not found: nope"})]
    with pytest.raises(ScaleError, match="^HTTP 404: Model not found: nope$"):
        scale_workers(url, "nope", 2, _keys())
    assert len(httpd.calls) == 1


def test_a_negative_worker_count_is_refused_before_any_call(management):
    url, httpd = management
    with pytest.raises(ValueError, match="0 or more"):
        scale_workers(url, "news_cnn", -1, _keys())
    assert httpd.calls == []


def test_the_client_reports_a_failed_scaling_as_a_client_error(management, monkeypatch):
    url, httpd = management
    httpd.script = [(400, {"code": 400, "message": "max_worker cannot be less than min_worker."})]
    client = NewsClient(url, management_url=url)
    monkeypatch.setattr(client, "_headers", lambda kind: {"Authorization": "Bearer k"})
    with pytest.raises(ClientError, match="HTTP 400: max_worker cannot be less than min_worker"):
        client.scale(2)
