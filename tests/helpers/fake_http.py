"""A threaded HTTP server on a free loopback port, for tests that fake TorchServe's APIs."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from client.api import CORRELATION_HEADER


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers with JSON bodies."""

    def send_json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        """Send `body` as JSON with `status` and any extra `headers` (None values skipped)."""
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            if value is not None:
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass  # keep test output clean


class EchoHandler(JSONHandler):
    """Answers each POST with its JSON body and the request's correlation id (as the news
    handler echoes it); 401 unless the Authorization header is `server.auth` (serve it with
    auth="Bearer k")."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.answer(200 if self.headers.get("Authorization") == self.server.auth else 401, body)

    def answer(self, status: int, body: object) -> None:
        """Send the answer (a subclass may send it twice, or fail it)."""
        self.send_json(status, body, {CORRELATION_HEADER: self.headers.get(CORRELATION_HEADER)})


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], **state) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    """(base URL, server) while the block runs; `state` becomes attributes of the server,
    where the handler reads them as `self.server.<name>`."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    for name, value in state.items():
        setattr(httpd, name, value)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
