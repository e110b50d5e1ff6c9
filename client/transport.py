"""HTTP for the client: keep-alive connections from the standard library.

A file of headlines is hundreds of requests from a few threads. With `requests`, every call
built a session and opened a connection, and importing it took a tenth of a second: on a
2-core machine that CPU is taken from the TorchServe answering the same run
(docs/batch.md has the figures). Here `http.client` connections are kept open between
calls and shared by the threads of a run.

Calls go to TorchServe directly: proxy settings in the environment are not read, and HTTPS
is verified against the system's certificate authorities (Python's default SSL context).
"""
from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

# Idle connections kept per server: more than a batch run has requests out (8 by default).
MAX_IDLE = 16
# A kept connection the server closed while it sat idle fails on its next request before
# any answer; such a request is sent once more, on a new connection.
_CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# Characters left as they are in a path (RFC 3986's pchar and "/"); others are %-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


class NoAnswer(OSError):
    """The server gave no answer: not reachable, the connection broke, or it timed out."""

    def __init__(self, url: str, reason: BaseException) -> None:
        self.url, self.reason = url, reason
        why = str(reason) or type(reason).__name__
        self.why = why if len(why) <= 200 else why[:200] + "..."
        super().__init__(f"no answer from {url} ({self.why})")


class InvalidAddress(OSError):
    """The URL cannot be called (scheme, host or port): no request was sent."""


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
        self._ssl: ssl.SSLContext | None = None

    def request(self, method: str, url: str, timeout: float, headers: dict[str, str] | None = None,
                params: dict[str, str] | None = None, json_body: object = None,
                reuse_if: Callable[[Response], bool] | None = None, fresh: bool = False) -> Response:
        """Send one request and read the whole answer; NoAnswer when none comes,
        InvalidAddress when `url` cannot be called.

        With `fresh`, the request goes out on a new connection (a caller's retry after a
        failure: other kept connections may be out of step too).

        `timeout` bounds connecting and each wait for data, in seconds. The connection serves
        later calls unless the server closes it or `reuse_if(answer)` is false: a caller that
        finds the answer was not its own (a server that answered one request twice) must not
        read the next answer from the same, out-of-step, connection. An idle connection with
        anything to read (the server closed it, or sent an answer nobody asked for) is not
        reused. A request that fails on a reused connection before any answer (closed by the
        server just as it was taken) is sent once more, on a new connection: callers that
        resend must be idempotent anyway (NewsClient checks the correlation id of every answer).
        """
        key, target = self._address(url)
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params)
        headers = dict(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection, reused = (self._new(key, timeout), False) if fresh else self._take(key, timeout)
        except (http.client.InvalidURL, UnicodeError) as err:
            raise InvalidAddress(f"cannot call {url}: {err}") from None
        try:
            try:
                answer = self._send(connection, method, target, body, headers)
            except _CLOSED_WHILE_IDLE:
                if not reused:
                    raise
                connection.close()
                connection, reused = self._new(key, timeout), False
                answer = self._send(connection, method, target, body, headers)
            response = Response(answer.status, answer.headers, answer.read())
        except (http.client.InvalidURL, UnicodeError) as err:
            connection.close()
            raise InvalidAddress(f"cannot call {url}: {err}") from None
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            raise NoAnswer(url, err) from None
        except BaseException:
            connection.close()  # half a request or answer: the connection is out of step
            raise
        if answer.will_close or (reuse_if is not None and not reuse_if(response)):
            connection.close()
        else:
            self._give_back(key, connection)
        return response

    @staticmethod
    def _send(connection: http.client.HTTPConnection, method: str, target: str, body: bytes | None,
              headers: dict[str, str]) -> http.client.HTTPResponse:
        connection.request(method, target, body, headers)
        return connection.getresponse()

    @staticmethod
    def _address(url: str) -> tuple[tuple[str, str, int], str]:
        """((scheme, host, port), %-encoded path and query) of `url`; InvalidAddress if unusable."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise InvalidAddress(f"cannot call {url}: {err}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidAddress(f"cannot call {url}: an http:// or https:// address is needed")
        if port == 0:
            raise InvalidAddress(f"cannot call {url}: port 0")
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        target = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
        return (parts.scheme, parts.hostname, port), target

    def _take(self, key: tuple, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection for `key` (True: it was used before) or a new one (False)."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                connection = idle.pop() if idle else None
            if connection is None:
                return self._new(key, timeout), False
            if connection.sock is None or _has_data(connection.sock):
                connection.close()  # closed by the server, or holding an answer nobody asked for
                continue
            connection.timeout = timeout
            connection.sock.settimeout(timeout)
            return connection, True

    def _new(self, key: tuple, timeout: float) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=timeout)

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


def _has_data(sock) -> bool:
    """Whether an idle socket can be read without waiting: end of file or unasked-for bytes,
    in the socket or already decrypted by TLS."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
