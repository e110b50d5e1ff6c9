"""Every test in this folder runs a real outside program (TorchServe, which needs Java 17+, or
a headless Chromium): it is marked `integration`, which `make test-unit` leaves out."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this folder's tests `integration` (pytest calls this hook with every test)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
