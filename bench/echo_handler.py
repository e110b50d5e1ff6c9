"""The framework floor: a TorchServe handler that does no work and echoes each request's body.

It is archived and served with the same config.properties, workers and batch settings as
news_cnn, so its throughput and latency are what TorchServe itself costs on this machine.
It imports nothing but the standard library, so it loads in milliseconds.
"""
from __future__ import annotations

from typing import Any


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
    """Return each request's body unchanged, one answer per request in the batch."""
    if data is None:  # TorchServe calls the entry point once with no data at load time
        return None
    return [row.get("body") or row.get("data") or b"" for row in data]
