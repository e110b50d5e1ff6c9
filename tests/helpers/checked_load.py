"""The reliability suite's client: many requests from a pool of threads, every answer kept.

`wrk` (bench/load.py) measures speed but keeps no answers; here a pool of threads on keep-alive
`http.client` connections keeps every status and body, so that each answer can be checked
against the request it belongs to. Loopback addresses only.
"""
from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.load import require_loopback
from client import api
from serving import rest

# Tries worth repeating: NewsClient's (server failures), and no answer at all (status 0).
RETRY_STATUSES = rest.RETRY_STATUSES | {0}


@dataclass
class Outcome:
    """One request of a checked load run."""

    index: int  # which request (position in the list given to CheckedLoad.run)
    status: int  # HTTP status, 0 when the connection failed
    body: bytes
    started: float  # time.monotonic() when it was sent
    finished: float  # time.monotonic() when its answer (or error) came
    error: str = ""  # the socket error, when status is 0
    connection: int = -1  # which keep-alive connection carried it (numbered as opened)
    echoed_id: str | None = None  # the answer's correlation header (the request's is its index)
    earlier: tuple[Outcome, ...] = ()  # the failed tries before this one, when retried
    # Not sent here: the balancer (CheckedLoad's `route`) had taken this server out of
    # rotation, so a real client's request would have gone to another one.
    rerouted: bool = False

    @property
    def needs_retry(self) -> bool:
        """No answer, a server failure, or another request's answer."""
        return not self.rerouted and (self.misdelivered or self.status in RETRY_STATUSES)

    @property
    def first_try(self) -> Outcome:
        """What a plain client (no retries) would have got: the first try."""
        return self.earlier[0] if self.earlier else self

    def tries(self) -> tuple[Outcome, ...]:
        """Every try of this request, the earlier failed ones first."""
        return (*self.earlier, self)

    @property
    def misdelivered(self) -> bool:
        """The answer carries another request's correlation id (or a 200 carries none): the
        connection delivered an answer that was not this request's."""
        if self.echoed_id is None:
            return self.status == 200
        return self.echoed_id != str(self.index)

    @property
    def latency_s(self) -> float:
        """Seconds from sending the request to its answer (or error)."""
        return self.finished - self.started

    def json(self):
        """The body parsed as JSON, or None."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class CheckedLoad:
    """Send many requests from a pool of threads and keep every answer.

    Each thread holds one keep-alive connection and reopens it after a failure or a
    `Connection: close`, as a real client would, so a worker crash shows up as a few failed
    requests, not a dead run. Each request carries its index as its correlation id; an answer
    that echoes another id is `misdelivered`, and its connection, out of step, is reopened.
    With `retries`, a try that `needs_retry` is sent again on a new connection, up to that many
    times (after NewsClient's jittered exponential back-off when `backoff`); the outcome keeps
    the failed tries in `earlier`. `route`, when given, plays a load balancer polling
    readiness: while it returns False no try is sent here, and the request is `rerouted`.
    `completed` counts answers so far (read it from another thread).
    """

    def __init__(self, url: str, headers: dict[str, str] | Callable[[], dict[str, str]] | None = None,
                 timeout_s: float = 60.0, retries: int = 0, backoff: bool = False,
                 route: Callable[[], bool] | None = None) -> None:
        require_loopback(url)
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self._headers = headers
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff = backoff
        self.route = route
        self.completed = 0
        self.stop = threading.Event()  # set it to end the run early

    def headers(self) -> dict[str, str]:
        """The extra headers (a callable is asked once per connection: keys can change)."""
        h = self._headers() if callable(self._headers) else self._headers
        return dict(h or {})

    def run(self, requests: Sequence[tuple[bytes, str]], concurrency: int, total: int | None = None,
            deadline_s: float = 600.0) -> list[Outcome]:
        """POST `total` requests (default: each of `requests` once), cycling through `requests`.

        Each request is (body, content_type). Stops early at `deadline_s` seconds or when
        `stop` is set; requests not sent by then are left out of the result.
        """
        total = len(requests) if total is None else total
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        counter = iter(range(total))
        connections = iter(range(10**9))
        stop_at = time.monotonic() + deadline_s

        def next_index() -> int | None:
            with lock:
                return next(counter, None)

        def connect() -> tuple[http.client.HTTPConnection, dict[str, str], int]:
            with lock:
                number = next(connections)
            return self._connect(), self.headers(), number

        def worker() -> None:
            conn, headers, number = connect()
            mine = []
            while time.monotonic() < stop_at and not self.stop.is_set():
                i = next_index()
                if i is None:
                    break
                body, content_type = requests[i % len(requests)]
                earlier: list[Outcome] = []
                while True:
                    if self.route is not None and not self.route():
                        now = time.monotonic()
                        outcome = Outcome(i, 0, b"", now, now, "rerouted by the balancer", rerouted=True)
                        break
                    outcome, keep = self._send(conn, headers, i, body, content_type)
                    outcome.connection = number
                    if not keep or outcome.needs_retry:
                        conn.close()  # dead, closing, or out of step
                        conn, headers, number = connect()
                    if not outcome.needs_retry or len(earlier) >= self.retries:
                        break
                    earlier.append(outcome)
                    if self.backoff:
                        time.sleep(rest.backoff_s(len(earlier) - 1))
                outcome.earlier = tuple(earlier)
                mine.append(outcome)
                with lock:
                    self.completed += 1
                if outcome.rerouted:
                    break  # out of rotation: this client's next requests go elsewhere
            conn.close()
            with lock:
                outcomes.extend(mine)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(outcomes, key=lambda o: o.index)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def _send(self, conn: http.client.HTTPConnection, headers: dict[str, str], index: int,
              body: bytes, content_type: str | None) -> tuple[Outcome, bool]:
        """One request; returns its outcome and whether the connection can be reused."""
        headers = {**headers, api.CORRELATION_HEADER: str(index)}
        if content_type is not None:
            headers["Content-Type"] = content_type
        start = time.monotonic()
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            keep = response.getheader("connection", "").lower() != "close"
            return Outcome(index, response.status, data, start, time.monotonic(),
                           echoed_id=response.getheader(api.CORRELATION_HEADER)), keep
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(index, 0, b"", start, time.monotonic(), repr(exc)), False


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
