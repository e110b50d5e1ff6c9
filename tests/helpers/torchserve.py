"""A real TorchServe for the integration tests (Java 17+; tests/integration/)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from serving.archive import build_archive
from serving.server import TorchServe, config_on_free_ports


@contextlib.contextmanager
def served_archive(artifacts: Path, workdir: Path, model_config: str | None = None) -> Iterator[TorchServe]:
    """A real TorchServe (1 worker, free ports, the project's config) serving `artifacts`
    archived into `workdir`, with `model_config` as its model-config.yaml when given; stopped
    on exit."""
    config_path = None
    if model_config is not None:
        config_path = workdir / "model-config.yaml"
        config_path.write_text(model_config)
    options = {"model_config": config_path} if config_path else {}
    build_archive(artifacts, workdir / "model_store", **options)
    ts = TorchServe(workdir, config_on_free_ports(workdir, workdir / "model_store", workers=1))
    try:
        ts.start(timeout=180)
        yield ts
    finally:
        ts.stop()
