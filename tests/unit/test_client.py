"""NewsClient against a fake inference API: answers are accepted only with their own
correlation id, server failures are tried again, refusals carry TorchServe's message."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from client import api
from client.api import CORRELATION_HEADER, ClientError, NewsClient, ServerFailure
from client.news_cnn import build_parser, main
from handler import request_parsing
from serving import rest
from tests.helpers import fake_http

ANSWER = [{"label": "Sports", "probabilities": {"Sports": 0.9}}]


class _Inference(fake_http.JSONHandler):
    """Answers each POST by the next (status, echo) of `server.plan`, then (200, "same"):
    echo "same" sends the request's correlation id back, "other" another one, "none" none."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.sent.append(self.headers.get(CORRELATION_HEADER))
        self.server.auth.append(self.headers.get("Authorization"))
        self.server.gateway.append(self.headers.get("X-Api-Key"))
        status, echo = self.server.plan.pop(0) if self.server.plan else (200, "same")
        message = (f"failed with {status}" if status != 400 else
                   "Token Authorization failed. org.pytorch.serve.archive.model.InvalidKeyException")
        echoed = {"same": self.headers.get(CORRELATION_HEADER), "other": "someone-else", "none": None}[echo]
        self.send_json(status, ANSWER if status == 200 else {"code": status, "message": message},
                       {"Retry-After": self.server.retry_after if status == 503 else None,
                        CORRELATION_HEADER: echoed or None})


@pytest.fixture
def fake():
    with fake_http.serve(_Inference, sent=[], plan=[], auth=[], gateway=[], retry_after=None) as (url, httpd):
        client = NewsClient(url, management_url=url)
        client._headers = lambda kind: {"Authorization": "Bearer k"}  # no key file needed here
        client.waits = []
        client._sleep = client.waits.append  # record back-offs instead of sleeping
        yield client, httpd


def test_the_client_and_the_handler_agree_on_the_header():
    assert CORRELATION_HEADER == request_parsing.CORRELATION_HEADER


def test_an_answer_with_its_own_id_is_returned_and_ids_are_fresh_per_call(fake):
    client, httpd = fake
    assert client.predict(["Yankees win"]) == ANSWER
    assert client.explain(["Yankees win"]) == ANSWER
    assert len(set(httpd.sent)) == 2 and all(httpd.sent)


@pytest.mark.parametrize("failure", [(500, "none"), (507, "none"), (503, "none"), (200, "other"),
                                     (200, "none")])
def test_a_failed_try_is_sent_again_with_a_fresh_id(fake, failure):
    client, httpd = fake
    httpd.plan = [failure]
    assert client.predict(["Yankees win"]) == ANSWER
    assert len(httpd.sent) == 2 and httpd.sent[0] != httpd.sent[1]


class _KeepAlive(_Inference):
    """_Inference on HTTP/1.1 keep-alive, recording the client's port of every request, each
    answer `server.delay` seconds late; a describe request gets handler metadata."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.server.ports.append(self.client_address[1])
        time.sleep(self.server.delay)
        if self.headers.get("describe"):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.server.sent.append(self.headers.get(CORRELATION_HEADER))
            status, echo = self.server.plan.pop(0) if self.server.plan else (200, "same")
            echoed = {"same": self.headers.get(CORRELATION_HEADER), "other": "someone-else"}[echo]
            self.send_json(status, {"max_texts": 64, "labels": ["Sports"]}, {CORRELATION_HEADER: echoed})
            return
        super().do_POST()


@pytest.fixture
def keep_alive():
    with fake_http.serve(_KeepAlive, sent=[], plan=[], auth=[], gateway=[], retry_after=None, ports=[],
                         delay=0.0) as (url, httpd):
        client = NewsClient(url, management_url="http://127.0.0.1:1")
        client._headers = lambda kind: {"Authorization": "Bearer k"}
        client._sleep = lambda seconds: None
        yield client, httpd


@pytest.mark.parametrize("failure", [(200, "other"), (503, "none")])
def test_calls_share_connections_and_a_retry_takes_a_new_one(keep_alive, failure):
    client, httpd = keep_alive
    assert client.predict(["a"]) == client.predict(["b"]) == ANSWER
    assert len(set(httpd.ports)) == 1  # kept alive
    httpd.delay = 0.2  # two calls at once: two kept connections
    threads = [threading.Thread(target=client.predict, args=(["c"],)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = set(httpd.ports)
    assert len(kept) == 2
    httpd.delay, httpd.plan = 0.0, [failure]
    assert client.predict(["d"]) == ANSWER  # a failed try on a kept connection, then its retry
    assert httpd.ports[-2] in kept and httpd.ports[-1] not in kept  # never another kept one


def test_the_describe_fallback_checks_its_correlation_id(keep_alive):
    client, httpd = keep_alive  # the management address answers nothing: the fallback is used
    httpd.plan = [(200, "other")]
    assert client.metadata() == {"max_texts": 64, "labels": ["Sports"]}
    assert len(httpd.sent) == 2 and httpd.sent[0] != httpd.sent[1]


def test_after_the_last_retry_the_failure_is_reported(fake):
    client, httpd = fake
    httpd.plan = [(200, "other")] * (client.retries + 1)
    with pytest.raises(ServerFailure, match="belongs to another request"):
        client.predict(["Yankees win"])
    assert len(httpd.sent) == client.retries + 1


def test_retries_wait_a_jittered_exponentially_growing_back_off(fake):
    client, httpd = fake
    httpd.plan = [(507, "none")] * client.retries
    assert client.predict(["Yankees win"]) == ANSWER
    assert len(client.waits) == client.retries
    for attempt, wait in enumerate(client.waits):
        assert 0 <= wait <= min(rest.BACKOFF_CAP_S, rest.BACKOFF_BASE_S * 2 ** attempt)
    # Jitter: over many draws the windows are used, not one fixed delay.
    draws = [rest.backoff_s(3) for _ in range(200)]
    assert max(draws) > 0.5 * rest.BACKOFF_BASE_S * 8 and min(draws) < 0.25 * rest.BACKOFF_BASE_S * 8
    assert max(rest.backoff_s(30) for _ in range(50)) <= rest.BACKOFF_CAP_S


def test_a_503_retry_after_is_honoured(fake):
    client, httpd = fake
    httpd.retry_after = "3"
    httpd.plan = [(503, "none")]
    assert client.predict(["Yankees win"]) == ANSWER
    assert client.waits == [3.0]


def test_a_refused_key_is_read_again_once_then_reported(fake):
    client, httpd = fake
    keys = iter(["old", "new", "newer", "newest"])
    client.key_file = Path("key_file.json")  # keys from a file: a refused one is read again
    client._headers = lambda kind: {"Authorization": f"Bearer {next(keys)}"}
    httpd.plan = [(400, "none")]
    assert client.predict(["Yankees win"]) == ANSWER
    assert httpd.auth == ["Bearer old", "Bearer new"] and client.waits == []
    httpd.auth.clear()
    httpd.plan = [(400, "none"), (400, "none")]
    with pytest.raises(api.KeyRefused, match="InvalidKeyException"):
        client.predict(["Yankees win"])
    assert len(httpd.auth) == 2  # one re-read, not a loop


@pytest.mark.parametrize("token", ["k", None])
def test_a_given_token_is_sent_as_it_is_and_none_sends_no_key(fake, token):
    _, httpd = fake
    client = NewsClient(f"{fake[0].url}/", token, headers={"X-Api-Key": "gw"}, retries=0)
    assert client.predict(["Yankees win"]) == ANSWER
    assert httpd.auth == [f"Bearer {token}" if token else None] and httpd.gateway == ["gw"]
    httpd.plan = [(400, "none")]
    with pytest.raises(api.KeyRefused, match="token given was refused"):
        client.predict(["Yankees win"])  # no key file to read again: reported at once
    assert len(httpd.auth) == 2


def test_a_refusal_is_reported_at_once_with_status_and_message(fake):
    client, httpd = fake
    httpd.plan = [(404, "none")]
    with pytest.raises(ClientError, match="^HTTP 404: failed with 404$") as err:
        client.predict(["Yankees win"])
    assert not isinstance(err.value, ServerFailure) and len(httpd.sent) == 1


def test_without_retries_one_failure_is_final(fake):
    client, httpd = fake
    client.retries = 0
    httpd.plan = [(500, "none")]
    with pytest.raises(ServerFailure, match="^HTTP 500"):
        client.predict(["Yankees win"])
    assert len(httpd.sent) == 1


def test_a_negative_retry_count_is_refused_on_the_command_line(capsys):
    assert main(["--retries", "-1", "predict", "x"]) == 1
    assert "retries must be 0 or more" in capsys.readouterr().err


ABSTAINED = {"label": None, "probabilities": None, "num_tokens": 0, "unknown_tokens": 0,
             "abstained": "no_known_words"}


class _Abstaining:
    """A NewsClient stand-in whose server abstains on every headline."""

    def predict(self, texts):
        return [dict(ABSTAINED) for _ in texts]

    def explain(self, texts):
        return [{**ABSTAINED, "tokens": [], "explained_class": None} for _ in texts]


def test_the_command_line_prints_and_draws_an_abstention(monkeypatch, capsys, tmp_path):
    import client.commands as cli

    monkeypatch.setattr(cli.NewsClient, "local", lambda *args, **kwargs: _Abstaining())
    assert main(["predict", "东京股市"]) == 0
    assert json.loads(capsys.readouterr().out) == [ABSTAINED]
    assert main(["explain", "东京股市", "🚀", "--png", str(tmp_path / "x.png")]) == 0
    captured = capsys.readouterr()
    assert [e["abstained"] for e in json.loads(captured.out)] == ["no_known_words"] * 2
    assert (tmp_path / "x-1.png").stat().st_size > 0 and (tmp_path / "x-2.png").stat().st_size > 0
    assert "Traceback" not in captured.err


def test_the_command_line_takes_its_server_from_options_then_the_environment(fake):
    import client.commands as cli

    _, httpd = fake
    url = fake[0].url
    args = build_parser().parse_args(["--url", url, "--token", "t", "--header", "X-Api-Key: gw",
                                          "predict", "x"])
    assert cli.execute(args) == 0
    environ = {"NEWS_CNN_URL": "http://127.0.0.1:1", "NEWS_CNN_TOKEN": "e",
               "NEWS_CNN_MANAGEMENT_URL": "http://127.0.0.1:2"}
    from_env = cli.client_from(build_parser().parse_args(["predict", "x"]), environ)
    assert (from_env.url, from_env.tokens["inference"], from_env.management_url) == (
        "http://127.0.0.1:1", "e", "http://127.0.0.1:2")
    assert httpd.auth == ["Bearer t"] and httpd.gateway == ["gw"]


def test_installed_without_a_checkout_and_no_server_given_is_one_line_naming_the_options(
        monkeypatch, capsys, tmp_path):
    import client.commands as cli

    monkeypatch.setattr(cli, "DEFAULT_CONFIG", tmp_path / "config.properties")  # as in site-packages
    for variable in cli.ENV.values():
        monkeypatch.delenv(variable, raising=False)
    assert main(["predict", "Oil rises"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--url" in err and "NEWS_CNN_URL" in err
    assert str(tmp_path) not in err


def test_a_header_without_a_name_is_an_input_error(capsys):
    assert main(["--url", "http://127.0.0.1:1", "--header", "no colon", "predict", "x"]) == 2
    assert "--header" in capsys.readouterr().err


def test_the_local_server_without_token_authorization_is_called_without_a_key(tmp_path):
    config = tmp_path / "config.properties"
    config.write_text("inference_address=http://127.0.0.1:1\ndisable_token_authorization=true\n")
    assert NewsClient.local(config)._headers("inference") == {}  # no key file to read
    config.write_text("inference_address=http://127.0.0.1:1\n")
    with pytest.raises(FileNotFoundError, match="key_file.json"):
        NewsClient.local(config)._headers("inference")  # token auth on: the key file it needs
