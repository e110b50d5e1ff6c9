"""HTTP for the client: keep-alive connections from the standard library.

A file of headlines is hundreds of requests from a few threads. With `requests`, every call
built a session and opened a connection, and importing it took a tenth of a second: on a
2-core machine that CPU is taken from the TorchServe answering the same run
(docs/batch.md has the figures). Here `http.client` connections are kept open between
calls and shared by the threads of a run.

Calls go to TorchServe directly: proxy settings in the environment are not read.
"""
from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

# Idle connections kept per server: more than a batch run has requests out (8 by default).
MAX_IDLE = 16
# A kept connection the server has closed while it sat idle fails on its next request
# without an answer; such a request is sent once more on a fresh connection.
_CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class NoAnswer(OSError):
    """The server gave no answer: not reachable, the connection broke, or it timed out."""

    def __init__(self, url: str, reason: BaseException) -> None:
        why = str(reason) or type(reason).__name__
        super().__init__(f"no answer from {url} ({why})")
        self.url, self.reason = url, reason


@dataclass
class Response:
    """One answer: its status, headers and body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        """The body as JSON (ValueError when it is not)."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Connections:
    """A pool of keep-alive connections per (scheme, host, port), shared by threads: a request
    takes an idle connection (or opens one) and gives it back once its answer is read."""

    def __init__(self) -> None:
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def request(self, method: str, url: str, timeout: float, headers: dict[str, str] | None = None,
                params: dict[str, str] | None = None, json_body: object = None,
                reuse_if: Callable[[Response], bool] | None = None) -> Response:
        """Send one request and read the whole answer; NoAnswer when none comes.

        `timeout` bounds connecting and each wait for data, in seconds. The connection serves
        later calls unless the server closes it or `reuse_if(answer)` is false: a caller that
        finds the answer was not its own (a server that answered one request twice) must not
        read the next answer from the same, out-of-step, connection. A request that fails
        on a reused connection before any answer (the server closed it while idle) is sent
        again once on a new one; callers that resend must be idempotent anyway (NewsClient
        checks the correlation id of every answer).
        """
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if params:
            target += ("&" if parts.query else "?") + urlencode(params)
        headers = dict(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        key = (parts.scheme, parts.hostname, parts.port)
        while True:
            connection, reused = self._take(key, timeout)
            try:
                connection.request(method, target, body, headers)
                answer = connection.getresponse()
                data = answer.read()
            except _CLOSED_WHILE_IDLE as err:
                connection.close()
                if reused:
                    continue
                raise NoAnswer(url, err) from None
            except (OSError, http.client.HTTPException) as err:
                connection.close()
                raise NoAnswer(url, err) from None
            response = Response(answer.status, answer.headers, data)
            if answer.will_close or (reuse_if is not None and not reuse_if(response)):
                connection.close()
            else:
                self._give_back(key, connection)
            return response

    def _take(self, key: tuple, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection for `key` (True: it was used before) or a new one (False)."""
        with self._lock:
            idle = self._idle.get(key)
            connection = idle.pop() if idle else None
        if connection is not None:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            return connection, True
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=ssl.create_default_context()), False
        if scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=timeout), False
        raise NoAnswer(f"{scheme}://{host}:{port}", ValueError(f"unsupported scheme {scheme!r}"))

    def _give_back(self, key: tuple, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
