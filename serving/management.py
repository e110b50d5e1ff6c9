"""The one client of TorchServe's management API (serving/ and client/ both use it): a model's
description, and its worker count, set and resent when TorchServe asks for it.

TorchServe 0.12 stops scaled-down workers inside the scaling request itself
(`WorkLoadManager.modelChanged`). When the wait for a kill fails it answers 500 ("Failed to
start workers for model ..."), and when it times out 408 ("... please resend request"),
with some surplus workers removed and the rest still there. The same request sent again
removes the rest, so `scale_workers` resends on those two statuses, a bounded number of
times; any other error is final.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from serving import rest

RESEND_STATUSES = frozenset({408, 500})
ATTEMPTS = 3
RESEND_PAUSE_S = 1.0


class ScaleError(RuntimeError):
    """TorchServe refused the scaling request, or failed it on every attempt."""

    def __init__(self, status: int, message: str, attempts: int) -> None:
        super().__init__(f"HTTP {status}: {message}"
                         + (f" (after {attempts} attempts)" if attempts > 1 else ""))
        self.status = status
        self.attempts = attempts


def count_ready(description: dict) -> int:
    """How many workers of a model description (the management API's answer) are READY."""
    return sum(w.get("status") == "READY" for w in description.get("workers", []))


def describe(management_url: str, model: str, headers: dict[str, str], timeout: float,
             customized: bool = False) -> dict:
    """The description of `model` (workers, batch settings, version; with `customized`, the
    handler's own metadata too); rest.Refused or rest.NoAnswer when there is none."""
    response = rest.request("GET", f"{management_url}/models/{model}", timeout, headers,
                            params={"customized": "true"} if customized else None)
    return response.checked().json()[0]


def scale_workers(management_url: str, model: str, workers: int,
                  headers: Callable[[], dict[str, str]], timeout: float = 120.0,
                  attempts: int = ATTEMPTS) -> dict:
    """PUT min_worker = max_worker = `workers` synchronously; TorchServe's JSON answer plus
    `attempts`. `headers` is called before each attempt, so a key renewed in between is used."""
    # 0 is allowed: it takes the model out of service (readiness turns false) without
    # unregistering it, and scaling up again brings it back.
    if workers < 0:
        raise ValueError(f"the worker count must be 0 or more, got {workers}")
    attempt = 1
    while True:
        response = rest.request(
            "PUT", f"{management_url}/models/{model}", timeout + 10, headers(),
            params={"min_worker": workers, "max_worker": workers, "synchronous": "true",
                    "timeout": int(timeout)})
        if response.status < 400:
            body = response.decoded()
            return {**body, "attempts": attempt} if isinstance(body, dict) else \
                {"status": body, "attempts": attempt}
        if response.status not in RESEND_STATUSES or attempt >= attempts:
            raise ScaleError(response.status, response.message(), attempt)
        attempt += 1
        time.sleep(RESEND_PAUSE_S)
