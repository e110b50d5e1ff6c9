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


class ClientError(RuntimeError):
    """TorchServe refused a call; the message carries its status and JSON message."""


@dataclass
class NewsClient:
    """Calls one TorchServe; defaults match `make serve` started from the repo root."""

    endpoints: Endpoints
    key_file: Path = Path(KEY_FILE)
    model: str = MODEL_NAME
    timeout: float = 30.0

    @classmethod
    def from_config(cls, config: str | Path = DEFAULT_CONFIG, key_file: str | Path = KEY_FILE,
                    model: str = MODEL_NAME, timeout: float = 30.0) -> "NewsClient":
        """A client for the addresses in a config.properties."""
        return cls(Endpoints.from_file(config), Path(key_file), model, timeout)

    def _headers(self, kind: str) -> dict[str, str]:
        return fresh_keys(self.key_file, self.endpoints.management).headers(kind)

    def _call(self, method: str, url: str, kind: str, correlate: bool = False, **kwargs) -> object:
        """One API call; with `correlate`, the answer must echo the id this call sent."""
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
            raise ClientError(f"HTTP {response.status_code}: {message}")
        echoed = response.headers.get(CORRELATION_HEADER)
        if correlate and echoed != sent:
            raise ClientError(f"the answer belongs to another request ({CORRELATION_HEADER} "
                              f"{echoed!r}, sent {sent!r}); send the request again")
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
        """Set the worker count and wait until TorchServe has done it; `attempts` in the
        answer counts the resends TorchServe asked for (serving/scaling.py)."""
        try:
            return scale_workers(self.endpoints.management, self.model, workers,
                                 lambda: self._headers("management"), self.timeout)
        except ScaleError as err:
            raise ClientError(str(err)) from err

    def describe(self) -> dict:
        """The model's description, including the handler's own metadata."""
        return self._call("GET", f"{self.endpoints.management}/models/{self.model}", "management",
                          params={"customized": "true"})[0]
