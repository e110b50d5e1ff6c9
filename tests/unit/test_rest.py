"""The one HTTP layer (serving/rest.py): connections are kept and reused, a connection the
server closed while it was idle, or holding an answer nobody asked for, is replaced without
failing the call, and a server that does not answer is NoAnswer."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from client.api import NewsClient
from serving import rest
from serving.properties import REPO_ROOT
from serving.rest import InvalidAddress, NoAnswer
from tests.helpers import fake_http


class _Ports(fake_http.EchoHandler):
    """Echoes, records the client's port and path of every request. With `server.close_after`
    it drops the connection after answering without saying so (as a server's idle timeout
    does); /drop reads the request and closes without answering; /slow answers after 0.3 s;
    /twice answers twice (as TorchServe 0.12 can after a scale-down)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.server.ports.append(self.client_address[1])
        self.server.paths.append(self.path)
        if self.path.endswith("/drop"):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.close_connection = True
            return
        if self.path.endswith("/slow"):
            time.sleep(0.3)
        if self.path.endswith("/twice"):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.answer(200, body)
            time.sleep(0.05)  # the copy comes once the client has read the answer
            self.answer(200, {"stale": True})
            return
        super().do_POST()
        if self.server.close_after:
            self.close_connection = True


@pytest.fixture
def echo():
    with fake_http.serve(_Ports, auth="Bearer k", ports=[], paths=[], close_after=False) as (url, httpd):
        yield url, httpd


def _post(url: str, body: object, path: str = "/predictions/m") -> object:
    answer = rest.request("POST", f"{url}{path}", 5.0, {"Authorization": "Bearer k"}, json_body=body)
    assert answer.status == 200
    return answer.json()


def test_calls_reuse_one_connection(echo):
    url, httpd = echo
    assert [_post(url, {"texts": [str(i)]}) for i in range(5)] == [
        {"texts": [str(i)]} for i in range(5)]
    assert len(set(httpd.ports)) == 1


def test_threads_share_the_pool_without_mixing_answers(echo):
    url, httpd = echo
    answers: dict[int, object] = {}

    def call(i: int) -> None:
        answers[i] = [_post(url, {"texts": [f"{i}-{j}"]}) for j in range(10)]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: [{"texts": [f"{i}-{j}"]} for j in range(10)] for i in range(4)}
    assert len(set(httpd.ports)) <= 4  # 40 calls, at most one connection per thread at a time


def test_a_connection_closed_while_idle_is_replaced_and_the_call_answered(echo):
    url, httpd = echo
    httpd.close_after = True
    assert [_post(url, {"texts": [str(i)]}) for i in range(3)] == [
        {"texts": [str(i)]} for i in range(3)]
    assert len(set(httpd.ports)) == 3


def test_no_server_is_no_answer_naming_the_address():
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ping"
    with pytest.raises(NoAnswer, match=f"no answer from {url}") as err:
        rest.request("GET", url, 2.0)
    assert "refused" in err.value.why and not err.value.timed_out


def test_a_server_that_never_answers_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts the connection, never reads or answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/ping"
        with pytest.raises(NoAnswer, match="timed out") as err:
            rest.request("GET", url, 0.3)
    assert err.value.timed_out


def test_a_request_the_server_drops_goes_out_twice_at_most_however_many_connections_idle(echo):
    url, httpd = echo
    threads = [threading.Thread(target=_post, args=(url, {}, "/slow")) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(httpd.ports)) == 3  # three live connections wait in the pool
    with pytest.raises(NoAnswer):
        _post(url, {}, "/drop")
    assert httpd.paths.count("/drop") == 2  # once on a kept connection, once on a new one


def test_an_answer_nobody_asked_for_is_never_read_as_the_next_one(echo):
    url, _ = echo
    assert _post(url, {"texts": ["first"]}, "/twice") == {"texts": ["first"]}
    time.sleep(0.3)  # the unasked-for copy has arrived on the idle connection
    assert _post(url, {"texts": ["second"]}) == {"texts": ["second"]}


def test_paths_are_percent_encoded_and_query_parameters_added():
    seen = []

    class _Path(fake_http.JSONHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.send_json(200, {})

    with fake_http.serve(_Path) as (other, _):
        rest.request("GET", f"{other}/models/my model", 2.0, params={"customized": "true"})
    assert seen == ["/models/my%20model?customized=true"]


@pytest.mark.parametrize("address", ["ftp://127.0.0.1:8080", "http://127.0.0.1:99999", "http://",
                                     "http://127.0.0.1:0", "http://127.0.0.1 :8080", "http://exä..com:8080"])
def test_an_address_that_cannot_be_called_is_refused_at_once_without_retries(address):
    client = NewsClient(address, management_url=address)
    client._headers = lambda kind: {}
    client._sleep = lambda seconds: pytest.fail("an unusable address was tried again")
    with pytest.raises(InvalidAddress, match="cannot call"):
        client.predict(["Yankees win"])


def test_a_client_command_imports_neither_requests_nor_tqdm_nor_the_server():
    """news-cnn parses the server's commands too, but loads what runs them only for them."""
    code = ("import sys, client.news_cnn, client.batch; print(sorted({'requests', 'tqdm', 'asyncio', "
            "'psutil', 'serving.server', 'serving.probe'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_no_answer_keeps_its_reason_short():
    err = NoAnswer("http://h/p", ConnectionResetError("x" * 5000))
    assert len(str(err)) < 300 and err.why.endswith("...")


def test_proxy_settings_in_the_environment_are_not_used(echo, monkeypatch):
    url, httpd = echo
    for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:1")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert _post(url, {"texts": ["direct"]}) == {"texts": ["direct"]}
    assert httpd.paths == ["/predictions/m"]  # reached the server itself, by its own path
