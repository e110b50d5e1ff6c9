"""HTTP for everything that calls a server (the client, serving/, training's download): one
urllib3 pool of keep-alive connections, shared by threads, and one retry policy.

urllib3 replaces a kept connection that the server closed while it sat idle, or that holds
bytes nobody asked for (a server that answered one request twice). Calls go to the address
given (the environment's proxy settings are not read); HTTPS is verified against the
system's certificate authorities.

The retry policy is for idempotent calls (NewsClient's predictions and explanations): a try
that got no answer or a status in RETRY_STATUSES goes again after `backoff_s`, or after the
Retry-After a 503 carries; docs/reliability.md says which statuses and why.
"""
from __future__ import annotations

import http.client
import json
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import urllib3

# Server failures worth one more try of an idempotent call (a 4xx is the request's own fault):
# 507 "Worker died." and 500 from a crashed or stopped worker, 503 no worker / queue full,
# 502/504 from a proxy in front.
RETRY_STATUSES = frozenset({500, 502, 503, 504, 507})
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 2.0
# A server's Retry-After is honoured up to this long (a longer one is the caller's to wait).
RETRY_AFTER_CAP_S = 10.0
# Idle connections kept per server: more than a batch run has requests out (8 by default).
MAX_IDLE = 16

# How a kept connection the server closed while it sat idle fails when it is used.
_CLOSED_BEFORE_ANSWER = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _OneWrite:
    """A connection that writes a request's head and body in one go. urllib3 writes them
    apart: with TCP_NODELAY, two packets per request, and two reads for the server
    (docs/batch.md has what it cost)."""

    _head: bytes | None = None
    _hold_head = False

    def request(self, method, url, body=None, headers=None, **options):  # urllib3's signature
        self._head, self._hold_head = None, isinstance(body, bytes) and bool(body)
        super().request(method, url, body, headers, **options)

    def send(self, data) -> None:  # http.client's signature
        if self._hold_head:  # urllib3 sends the head first, then the body
            self._head, self._hold_head = data, False
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        super().send(data)


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = type("HTTPConnection", (_OneWrite, urllib3.connection.HTTPConnection), {})


class _TlsPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = type("HTTPSConnection", (_OneWrite, urllib3.connection.HTTPSConnection), {})


# The process's one pool: urllib3's PoolManager is thread-safe. Its own retries are off: a
# caller that may resend (NewsClient) does so with the policy above and a fresh correlation id.
POOL = urllib3.PoolManager(maxsize=MAX_IDLE, retries=False)
POOL.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}


class CallFailed(OSError):
    """A call that did not get a usable answer (NoAnswer, InvalidAddress, Refused)."""


class NoAnswer(CallFailed):
    """The server gave no answer: not reachable, the connection broke, or it timed out
    (`timed_out`: connected, but no answer came in time)."""

    def __init__(self, url: str, reason: BaseException, timed_out: bool = False) -> None:
        self.url, self.reason, self.timed_out = url, reason, timed_out
        why = str(reason) or type(reason).__name__
        self.why = why if len(why) <= 200 else why[:200] + "..."
        super().__init__(f"no answer from {url} ({self.why})")


class InvalidAddress(CallFailed):
    """The URL cannot be called (scheme, host or port): no request was sent."""


class Refused(CallFailed):
    """The server answered with an error status (4xx or 5xx); `status` is it."""

    def __init__(self, status: int, message: str, body: object = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status, self.body = status, body


@dataclass
class Response:
    """One answer: its status, headers and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        """The body as JSON (ValueError when it is not)."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def decoded(self) -> object:
        """The body as JSON, else as text."""
        try:
            return self.json()
        except ValueError:
            return self.text

    def checked(self) -> Response:
        """This answer; Refused when its status is an error."""
        if self.status >= 400:
            raise Refused(self.status, self.message(), self.decoded())
        return self

    def message(self) -> str:
        """The body's JSON "message" (TorchServe's and the handler's refusals), else its text."""
        try:
            body = self.json()
        except ValueError:
            return self.text.strip()
        return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def request(method: str, url: str, timeout: float, headers: Mapping[str, str] | None = None,
            params: Mapping[str, object] | None = None, json_body: object = None) -> Response:
    """Send one request and read the whole answer; NoAnswer when none comes within `timeout`
    seconds (connecting, and each wait for data), InvalidAddress when `url` cannot be called."""
    _check_address(url)
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    headers = dict(headers or {})
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    for resend in (False, True):
        try:
            answer = POOL.request(method, url, body=body, headers=headers, timeout=timeout, redirect=False)
            return Response(answer.status, answer.headers, answer.data)
        except urllib3.exceptions.LocationParseError as err:
            raise InvalidAddress(f"cannot call {url}: {err}") from None
        except urllib3.exceptions.ProtocolError as err:
            # Closed by the server before any answer, as a kept connection can be just as it is
            # taken: sent once more, on a new connection (the caller's resends are idempotent).
            if resend or not isinstance(err.args[-1], _CLOSED_BEFORE_ANSWER):
                raise NoAnswer(url, err) from None
            forget_connections()
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise NoAnswer(url, err, isinstance(err, urllib3.exceptions.ReadTimeoutError)) from None
    raise AssertionError("unreachable")


@dataclass
class Download:
    """A GET answer read in chunks (`chunks`), for bodies too large to hold."""

    url: str
    headers: Mapping[str, str]
    answer: urllib3.BaseHTTPResponse

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body, `size` bytes at a time; NoAnswer if the connection breaks."""
        try:
            yield from self.answer.stream(size)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise NoAnswer(self.url, err) from None


@contextmanager
def download(url: str, timeout: float) -> Iterator[Download]:
    """GET `url` from the internet, its body read as it comes; Refused on an error status.
    Unlike calls to a server of ours, this honours the environment's proxy settings."""
    import urllib.request  # for the proxy settings only: imports a client call does not need

    _check_address(url)
    proxy = urllib.request.getproxies().get(urlsplit(url).scheme)
    manager = urllib3.ProxyManager(proxy) if proxy and not urllib.request.proxy_bypass(
        urlsplit(url).hostname or "") else POOL
    try:
        answer = manager.request("GET", url, timeout=timeout, preload_content=False)
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise NoAnswer(url, err) from None
    try:
        if answer.status >= 400:
            raise Refused(answer.status, f"GET {url}")
        yield Download(url, answer.headers, answer)
    finally:
        answer.close()  # what is left unread (a body cut off) must not reach the next call
        answer.release_conn()


def forget_connections() -> None:
    """Close every idle connection: after an answer that was not the request's own, kept
    connections may be out of step, and the next try must take a new one."""
    POOL.clear()


def _check_address(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise InvalidAddress(f"cannot call {url}: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidAddress(f"cannot call {url}: an http:// or https:// address is needed")
    if port == 0:
        raise InvalidAddress(f"cannot call {url}: port 0")


def backoff_s(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): full jitter over an
    exponentially growing, capped window, so that clients failed together retry apart."""
    window = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt)
    return (rng or random).uniform(0, window)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """A Retry-After header in seconds (the delta-seconds form), capped; None if absent."""
    value = headers.get("Retry-After")
    try:
        return None if value is None else min(RETRY_AFTER_CAP_S, max(0.0, float(value)))
    except ValueError:
        return None
