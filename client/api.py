"""NewsClient: predictions, explanations, scaling and description over TorchServe's REST APIs.

It reads TorchServe's key_file.json on every call, and once more when TorchServe refuses the
key (400 InvalidKeyException: an operator renewed it), so it keeps working across renewals
and restarts. It never renews a key itself: that would lock out every other holder of it.
Failed tries of predictions and explanations are sent again by serving/rest.py's policy
(docs/reliability.md lists which statuses are retried and why).
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from serving import management, rest
from serving.keys import KEY_FILE, read_keys
from serving.properties import DEFAULT_CONFIG, MODEL_NAME, Endpoints, read_properties, token_auth_enabled
from serving.rest import NoAnswer

# The handler echoes this request header in its answer (handler/request_parsing.py).
CORRELATION_HEADER = "X-Correlation-Id"
INVALID_KEY = "InvalidKeyException"


class ClientError(RuntimeError):
    """TorchServe refused a call; the message carries its status and JSON message, and
    `status` and `body` the answer itself (None when the call got no answer)."""

    def __init__(self, message: str, status: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


class ServerFailure(ClientError):
    """A try that failed on the server's side: a 5xx, or an answer to another request."""

    retry_after_s: float | None = None  # a 503's Retry-After


class KeyRefused(ClientError):
    """TorchServe refused the key (400 InvalidKeyException): renewed, expired, or a restart."""


def _message(body: object) -> object:
    return body.get("message", body) if isinstance(body, dict) else body


def check_answer(status: int, body: object) -> object:
    """`body` when `status` is a success; else the ClientError it stands for (ServerFailure
    for the statuses worth another try), its message "HTTP <status>: <the body's message>"."""
    if status < 400:
        return body
    message = _message(body)
    text = f"HTTP {status}: {message}" if message not in ("", None) else f"HTTP {status} (no message)"
    if status in rest.RETRY_STATUSES:
        raise ServerFailure(text, status, body)
    raise ClientError(text, status, body)


class HandlerClient:
    """predict and explain for anything that can `send` a body to the handler (NewsClient
    over REST, client.commands.ArchiveInProcess in this process)."""

    def send(self, body: dict, explain: bool = False) -> object:
        raise NotImplementedError

    def predict(self, texts: list[str]) -> list[dict]:
        """One answer per headline (label, probabilities high to low, token counts)."""
        return self.send({"texts": list(texts)})

    def explain(self, texts: list[str]) -> list[dict]:
        """One explanation per headline (prediction plus n-grams and word scores)."""
        return self.send({"texts": list(texts)}, explain=True)


class NewsClient(HandlerClient):
    """Calls one TorchServe: its inference API at `url`, and its management API at
    `management_url` (None: not reachable; metadata then comes from the inference API).
    `token` and `management_token` are sent as `Authorization: Bearer` (None: none, as behind
    a cluster's gateway); with `key_file` (TorchServe's key_file.json) they are read from it
    instead. `headers` go with every call (a gateway's own key)."""

    def __init__(self, url: str, token: str | None = None, *, management_url: str | None = None,
                 management_token: str | None = None, key_file: str | Path | None = None,
                 headers: dict[str, str] | None = None, model: str = MODEL_NAME,
                 timeout: float = 30.0, retries: int = 4) -> None:
        if retries < 0:
            raise ClientError(f"retries must be 0 or more, not {retries}")
        self.url = url.rstrip("/")
        self.management_url = management_url.rstrip("/") if management_url else None
        self.tokens = {"inference": token, "management": management_token}
        self.key_file = Path(key_file) if key_file is not None else None
        self.headers = dict(headers or {})
        self.model, self.timeout, self.retries = model, timeout, retries

    @classmethod
    def local(cls, config: str | Path = DEFAULT_CONFIG, key_file: str | Path | None = None,
              **options) -> NewsClient:
        """A client for the TorchServe a config.properties describes (`make serve`'s by
        default), its keys read from `key_file` (key_file.json beside the config) on every
        call; none when the config turns token authorization off."""
        config = Path(config)
        endpoints = Endpoints.from_file(config)
        if not token_auth_enabled(read_properties(config)):
            key_file = None
        elif key_file is None:
            key_file = config.parent / KEY_FILE
        return cls(endpoints.inference, management_url=endpoints.management, key_file=key_file,
                   **options)

    def _headers(self, kind: str) -> dict[str, str]:
        if self.key_file is not None:
            return {**self.headers, **read_keys(self.key_file).headers(kind)}
        token = self.tokens[kind]
        return {**self.headers, **({"Authorization": f"Bearer {token}"} if token else {})}

    def _management(self) -> str:
        if self.management_url is None:
            raise ClientError("no management API address: give --management-url URL (or "
                              "NEWS_CNN_MANAGEMENT_URL), and its key with --management-token")
        return self.management_url

    def _call(self, method: str, url: str, kind: str, correlate: bool = False, **kwargs) -> object:
        """One API call; a refused key is read again from the key file and tried once more.
        With `correlate` (predictions and explanations, which are idempotent), the answer must
        echo the id its try sent, and a failed try (no answer, a 5xx, another request's answer,
        as from TorchServe 0.12 under a scale-down) is sent again, `retries` times at most."""
        retries = self.retries if correlate else 0
        key_reread, attempt = False, 0
        while True:
            try:
                return self._try(method, url, kind, correlate, **kwargs)
            except KeyRefused:
                if key_reread or self.key_file is None:
                    raise
                key_reread = True  # _try reads the key file again
            except (ServerFailure, NoAnswer) as err:
                # Kept connections may be out of step (docs/reliability.md): none is reused.
                rest.forget_connections()
                if attempt >= retries:
                    raise
                retry_after = getattr(err, "retry_after_s", None)
                self._sleep(retry_after if retry_after is not None else rest.backoff_s(attempt))
                attempt += 1

    @staticmethod
    def _sleep(seconds: float) -> None:
        time.sleep(seconds)

    def _try(self, method: str, url: str, kind: str, correlate: bool, **kwargs) -> object:
        headers = {**self._headers(kind), **kwargs.pop("headers", {})}
        sent = uuid.uuid4().hex if correlate else None
        if sent is not None:
            headers[CORRELATION_HEADER] = sent
        response = rest.request(method, url, self.timeout, headers, **kwargs)
        body = response.decoded()
        if response.status == 400 and INVALID_KEY in str(body):
            where = (f"key file: {self.key_file}; `make keys` shows the current keys" if self.key_file
                     else "the token given was refused: renewed or expired?")
            raise KeyRefused(f"HTTP 400: {_message(body)} ({where})", 400, body)
        try:
            check_answer(response.status, body)
        except ServerFailure as err:
            if response.status == 503:
                err.retry_after_s = rest.retry_after_s(response.headers)
            raise
        echoed = response.headers.get(CORRELATION_HEADER)
        if correlate and echoed != sent:
            raise ServerFailure(f"the answer belongs to another request ({CORRELATION_HEADER} "
                                f"{echoed!r}, sent {sent!r})")
        return body

    def send(self, body: dict, explain: bool = False) -> object:
        """POST one JSON body ({"text": ...} or {"texts": [...]}) to /predictions, or to
        /explanations with `explain`; returns the answer (an object or a list)."""
        api = "explanations" if explain else "predictions"
        return self._call("POST", f"{self.url}/{api}/{self.model}", "inference",
                          correlate=True, json_body=body)

    def metadata(self) -> dict:
        """What the handler says about itself (labels, max_texts, max_chars, version...):
        from the management API's description, or, where that API is out of reach or refuses
        (deployments keep it on loopback, callers may hold only the inference key), from the
        handler's answer to a `describe` request on the inference API."""
        try:
            metadata = self.describe().get("customizedMetadata")
        except (ClientError, OSError):  # NoAnswer is an OSError
            metadata = self._call("POST", f"{self.url}/predictions/{self.model}",
                                  "inference", correlate=True, headers={"describe": "true"})
        if not isinstance(metadata, dict):
            raise ClientError(f"model {self.model!r} has no handler metadata in its description")
        return metadata

    def scale(self, workers: int) -> dict:
        """Set the worker count and wait until TorchServe has done it (up to
        serving/management.py's timeout, not `timeout`: workers take seconds to start);
        `attempts` in the answer is 1 unless TorchServe asked for the request again."""
        try:
            return management.scale_workers(self._management(), self.model, workers,
                                            lambda: self._headers("management"))
        except management.ScaleError as err:
            raise ClientError(str(err)) from err

    def describe(self) -> dict:
        """The model's description, including the handler's own metadata. A refused key is
        read again from the key file and tried once more."""
        for last_try in (self.key_file is None, True):
            try:
                return management.describe(self._management(), self.model, self._headers("management"),
                                           self.timeout, customized=True)
            except rest.Refused as err:
                refused_key = err.status == 400 and INVALID_KEY in str(err.body)
                if last_try or not refused_key:
                    refusal = KeyRefused if refused_key else ClientError
                    raise refusal(str(err), err.status, err.body) from None
