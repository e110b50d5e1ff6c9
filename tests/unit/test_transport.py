"""The client's HTTP: connections are kept and reused, a connection the server closed while it
was idle is replaced without failing the call, and a server that does not answer is NoAnswer."""
from __future__ import annotations

import socket
import threading

import pytest

from client.transport import Connections, NoAnswer
from tests.helpers import fake_http


class _Ports(fake_http.EchoHandler):
    """Echoes, records the client's port of every request, and with `server.close_after`
    drops the connection after answering without saying so (as a server's idle timeout does)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.server.ports.append(self.client_address[1])
        super().do_POST()
        if self.server.close_after:
            self.close_connection = True


@pytest.fixture
def echo():
    with fake_http.serve(_Ports, auth="Bearer k", ports=[], close_after=False) as (url, httpd):
        yield url, httpd


def _post(connections: Connections, url: str, body: object) -> object:
    answer = connections.request("POST", f"{url}/predictions/m", 5.0, {"Authorization": "Bearer k"},
                                 json_body=body)
    assert answer.status == 200
    return answer.json()


def test_calls_reuse_one_connection(echo):
    url, httpd = echo
    connections = Connections()
    assert [_post(connections, url, {"texts": [str(i)]}) for i in range(5)] == [
        {"texts": [str(i)]} for i in range(5)]
    assert len(set(httpd.ports)) == 1


def test_threads_share_the_pool_without_mixing_answers(echo):
    url, httpd = echo
    connections = Connections()
    answers: dict[int, object] = {}

    def call(i: int) -> None:
        answers[i] = [_post(connections, url, {"texts": [f"{i}-{j}"]}) for j in range(10)]

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
    connections = Connections()
    assert [_post(connections, url, {"texts": [str(i)]}) for i in range(3)] == [
        {"texts": [str(i)]} for i in range(3)]
    assert len(set(httpd.ports)) == 3


def test_no_server_is_no_answer_naming_the_address():
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ping"
    with pytest.raises(NoAnswer, match=f"no answer from {url}") as err:
        Connections().request("GET", url, 2.0)
    assert isinstance(err.value.reason, ConnectionRefusedError)


def test_a_server_that_never_answers_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts the connection, never reads or answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/ping"
        with pytest.raises(NoAnswer, match="timed out"):
            Connections().request("GET", url, 0.3)


def test_query_parameters_are_added_to_the_path():
    seen = []

    class _Path(fake_http.JSONHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.send_json(200, {})

    with fake_http.serve(_Path) as (other, _):
        Connections().request("GET", f"{other}/models/m", 2.0, params={"customized": "true"})
    assert seen == ["/models/m?customized=true"]
