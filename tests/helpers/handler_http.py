"""The project's real handler (in process, serving.offline) behind a fake TorchServe REST API,
for client tests that need real answers and refusals without Java.

POST /predictions|explanations/<model> go to the handler (with the correlation id echoed);
GET /models/<model> describes it with the handler's customizedMetadata. `server.delays`
(seconds, popped per POST) slows answers; `server.gate` (a threading.Event) holds every POST
after the first `server.ungated` until it is set; `server.metadata` overrides what describe
says; `server.refuse_key` answers every call with TorchServe's 400 InvalidKeyException.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from client.api import CORRELATION_HEADER, NewsClient
from tests.helpers import fake_http


class _TorchServeLike(fake_http.JSONHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        server = self.server
        server.bodies.append(body)
        if server.gate is not None and len(server.bodies) > server.ungated:
            server.gate.wait(timeout=60)
        if server.refuse_key:
            self.send_json(400, {"code": 400, "type": "InvalidKeyException",
                                 "message": "Token Authorization failed. InvalidKeyException"})
            return
        if server.delays:
            time.sleep(server.delays.pop(0))
        status, answer = server.model.call(body, explain=self.path.startswith("/explanations/"))
        try:
            self.send_json(status, answer, {CORRELATION_HEADER: self.headers.get(CORRELATION_HEADER)})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away: an interrupted run

    def do_GET(self) -> None:  # noqa: N802
        metadata = {**self.server.model.metadata(), **self.server.metadata}
        self.send_json(200, [{"modelName": "news_cnn", "customizedMetadata": metadata}])


@contextmanager
def serve(model, **state) -> Iterator[tuple[NewsClient, object]]:
    """(a NewsClient pointed at it, the HTTP server) while the block runs."""
    defaults = {"bodies": [], "delays": [], "metadata": {}, "refuse_key": False, "gate": None,
                "ungated": 0}
    with fake_http.serve(_TorchServeLike, model=model, **{**defaults, **state}) as (url, httpd):
        client = NewsClient(url, management_url=url)
        client._headers = lambda kind: {"Authorization": "Bearer k"}  # no key file needed
        yield client, httpd


def write_config(path, url: str) -> None:
    """A config.properties and key file pointing the command line at `url`."""
    path.joinpath("config.properties").write_text(
        f"inference_address={url}\nmanagement_address={url}\nmetrics_address={url}\n")
    key = {"key": "k", "expiration time": "2099-01-01T00:00:00Z"}
    path.joinpath("key_file.json").write_text(json.dumps(
        {"management": key, "inference": key, "API": {"key": "k"}}))
