"""The framework floor: a TorchServe handler that does no work and echoes each request's body.

Served with news_cnn's config.properties, workers and batch settings, its figures are what
TorchServe itself costs here. Standard library only, so it loads in milliseconds.
"""
from __future__ import annotations

from typing import Any


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[bytes] | None:
    """Return each request's body unchanged, one answer per request in the batch."""
    if data is None:  # TorchServe calls the entry point once with no data at load time
        return None
    return [row.get("body") or row.get("data") or b"" for row in data]
