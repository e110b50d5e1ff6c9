"""The probe server: the HTTP face of a HealthChecker (serving/health.py) for load balancers
and Kubernetes' httpGet probes. GET /ready and /live, without a key, answer 200 or 503 with
{"ready"|"live": bool, "reason": str}; one request per connection.

One event-loop thread holds every connection, so an idle or half-sent request costs no
thread. Concurrent polls share one check at most CACHE_S old, so a burst of polls sends one
canary.
"""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import urlsplit

from serving.health import HealthChecker, Verdict
from serving.server import TorchServe

CACHE_S = 0.25
# Bounds whatever clients do: seconds for a request head to arrive (and for the answer to be
# taken), its size, how many connections may wait for theirs (the oldest is dropped to admit
# a new one: a probe sends its request at once, only a stalled or hostile client waits), the
# listen backlog, and the threads that run checks (one ready and one live check at a time).
REQUEST_TIMEOUT_S = 2.0
MAX_HEAD_BYTES = 8192
MAX_WAITING = 256
BACKLOG = 4096
CHECK_THREADS = 2


class ProbeServer:
    """GET /ready and /live for one HealthChecker, within the bounds above."""

    def __init__(self, address: tuple[str, int], checker: HealthChecker) -> None:
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self.server_address = self._socket.getsockname()
        self.checker = checker
        self._locks = {"ready": threading.Lock(), "live": threading.Lock()}
        self._last: dict[str, tuple[float, Verdict]] = {}
        self._checks = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="probe-check")
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running = threading.Event()
        self._finished = threading.Event()

    def verdict(self, kind: str) -> Verdict:
        """The `kind` ("ready" or "live") verdict, checked again when older than CACHE_S."""
        with self._locks[kind]:
            when, verdict = self._last.get(kind, (0.0, None))
            if verdict is None or time.monotonic() - when > CACHE_S:
                # Aged from the check's start: what it saw is never older than CACHE_S + its run.
                when = time.monotonic()
                verdict = self.checker.ready() if kind == "ready" else self.checker.live()
                self._last[kind] = (when, verdict)
            return verdict

    def serve_forever(self) -> None:
        """Answer polls until `shutdown`."""
        try:
            asyncio.run(self._serve())
        finally:
            self._finished.set()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop `serve_forever` (from another thread) and wait until it has returned."""
        if self._running.wait(timeout) and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._finished.wait(timeout)

    def server_close(self) -> None:
        """Release the listening socket and the check threads."""
        self._socket.close()
        self._checks.shutdown(wait=False)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self._socket, limit=MAX_HEAD_BYTES)
        self._running.set()
        async with server:
            await self._stop.wait()
        for writer in list(self._waiting):
            writer.transport.abort()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one request head (bounded in time and size), answer it, close."""
        if len(self._waiting) >= MAX_WAITING:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.transport.abort()
        self._waiting[writer] = None
        answered = False
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            self._waiting.pop(writer, None)
            method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, body = await self._answer(method, target)
            writer.write(_response(status, body, head_only=method == "HEAD"))
            # A graceful close sends what is buffered; abort() would drop it.
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), REQUEST_TIMEOUT_S)
            answered = True
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, ValueError):
            pass  # too slow, too big, dropped or malformed: close without an answer
        finally:
            self._waiting.pop(writer, None)
            if not answered:
                writer.transport.abort()

    async def _answer(self, method: str, target: str) -> tuple[int, dict]:
        """(status, JSON body) for a request's method and target."""
        if method not in ("GET", "HEAD"):
            return 405, {"code": 405, "message": "GET /ready or /live"}
        path = target.split("?", 1)[0].rstrip("/")
        if path not in ("/ready", "/live"):
            return 404, {"code": 404, "message": "GET /ready or /live"}
        kind = path[1:]
        verdict = await asyncio.get_running_loop().run_in_executor(self._checks, self.verdict, kind)
        return (200 if verdict.ok else 503), {kind: verdict.ok, "reason": verdict.reason}


def _response(status: int, body: dict, head_only: bool = False) -> bytes:
    """A whole HTTP/1.1 answer with a JSON body that closes the connection."""
    payload = json.dumps(body).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode() + (b"" if head_only else payload)


def serve_until_terminated(server: TorchServe, model: str) -> None:
    """Serve GET /ready and /live for `server` at its config's health_address until SIGTERM
    (`news-cnn probe`, which serving/server.py starts beside TorchServe)."""
    address = urlsplit(server.endpoints.health)
    checker = HealthChecker.for_server(server.workdir, server.config, model)
    httpd = ProbeServer((address.hostname or "127.0.0.1", address.port or 8083), checker)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    print(f"health server at {server.endpoints.health}/ready and /live; canary {checker.canary}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
