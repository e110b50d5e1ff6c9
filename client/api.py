"""NewsClient: predictions, explanations, scaling and description over TorchServe's REST APIs.

It reads TorchServe's key_file.json on every call (renewing a key about to expire with the
never-expiring API key), so it keeps working across key renewals and restarts.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from serving.keys import KEY_FILE, fresh_keys
from serving.properties import DEFAULT_CONFIG, MODEL_NAME, Endpoints
from serving.scaling import ScaleError, scale_workers

# The handler echoes this request header in its answer (handler/request_parsing.py).
CORRELATION_HEADER = "X-Correlation-Id"


# Server failures worth one more try of an idempotent call (a 4xx is the request's own fault).
RETRY_STATUSES = frozenset({500, 502, 503, 504, 507})


class ClientError(RuntimeError):
    """TorchServe refused a call; the message carries its status and JSON message."""


class ServerFailure(ClientError):
    """A try that failed on the server's side: a 5xx, or an answer to another request."""


@dataclass
class NewsClient:
    """Calls one TorchServe; defaults match `make serve` started from the repo root."""

    endpoints: Endpoints
    key_file: Path = Path(KEY_FILE)
    model: str = MODEL_NAME
    timeout: float = 30.0
    # Predictions and explanations are idempotent: a try that gets no answer, a 5xx, or
    # another request's answer (TorchServe 0.12 under a scale-down) is sent again.
    retries: int = 2

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ClientError(f"retries must be 0 or more, not {self.retries}")

    @classmethod
    def from_config(cls, config: str | Path = DEFAULT_CONFIG, key_file: str | Path = KEY_FILE,
                    model: str = MODEL_NAME, timeout: float = 30.0, retries: int = 2) -> "NewsClient":
        """A client for the addresses in a config.properties."""
        return cls(Endpoints.from_file(config), Path(key_file), model, timeout, retries)

    def _headers(self, kind: str) -> dict[str, str]:
        return fresh_keys(self.key_file, self.endpoints.management).headers(kind)

    def _call(self, method: str, url: str, kind: str, correlate: bool = False, **kwargs) -> object:
        """One API call. With `correlate` (the idempotent predictions and explanations), the
        answer must echo the id its try sent, and a failed try is sent again, `retries` times
        at most."""
        retries_left = self.retries if correlate else 0
        while True:
            try:
                return self._try(method, url, kind, correlate, **kwargs)
            except (ServerFailure, requests.ConnectionError, requests.Timeout):
                if retries_left <= 0:
                    raise
                retries_left -= 1

    def _try(self, method: str, url: str, kind: str, correlate: bool, **kwargs) -> object:
        headers = self._headers(kind)
        sent = uuid.uuid4().hex if correlate else None
        if sent is not None:
            headers[CORRELATION_HEADER] = sent
        response = requests.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            message = body.get("message", body) if isinstance(body, dict) else body
            failure = ServerFailure if response.status_code in RETRY_STATUSES else ClientError
            raise failure(f"HTTP {response.status_code}: {message}")
        echoed = response.headers.get(CORRELATION_HEADER)
        if correlate and echoed != sent:
            raise ServerFailure(f"the answer belongs to another request ({CORRELATION_HEADER} "
                                f"{echoed!r}, sent {sent!r})")
        return body

    def predict(self, texts: list[str]) -> list[dict]:
        """One answer per headline (label, probabilities high to low, token counts)."""
        return self._call("POST", f"{self.endpoints.inference}/predictions/{self.model}",
                          "inference", correlate=True, json={"texts": list(texts)})

    def explain(self, texts: list[str]) -> list[dict]:
        """One explanation per headline (prediction plus n-grams and word scores)."""
        return self._call("POST", f"{self.endpoints.inference}/explanations/{self.model}",
                          "inference", correlate=True, json={"texts": list(texts)})

    def scale(self, workers: int) -> dict:
        """Set the worker count and wait until TorchServe has done it (up to scaling.py's
        timeout, not `timeout`: workers take seconds to start); `attempts` in the answer is 1
        unless TorchServe asked for the request again."""
        try:
            return scale_workers(self.endpoints.management, self.model, workers,
                                 lambda: self._headers("management"))
        except ScaleError as err:
            raise ClientError(str(err)) from err

    def describe(self) -> dict:
        """The model's description, including the handler's own metadata."""
        return self._call("GET", f"{self.endpoints.management}/models/{self.model}", "management",
                          params={"customized": "true"})[0]
