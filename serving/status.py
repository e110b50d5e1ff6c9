"""The served model's status line: version, READY workers against the archive's minWorkers,
and the addresses (`news-cnn status`, and what `start` and `run` print)."""
from __future__ import annotations

import contextlib
import zipfile
from typing import TYPE_CHECKING

from serving.health import model_archive
from serving.management import count_ready
from serving.polling import wait_for

if TYPE_CHECKING:
    from serving.server import TorchServe


def _configured_min_workers(server: TorchServe, model: str, described: int) -> int:
    """minWorkers as deployed: the archive's model-config.yaml (a scaling call changes the
    live value, so `make scale WORKERS=0` must not make 0 workers look healthy), else the
    live value; at least 1."""
    from serving.archive import read_model_config  # yaml and zipfile: not for `news-cnn predict`

    try:
        archived = read_model_config(model_archive(server.config, model)).get("minWorkers")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        archived = None
    return max(1, int(archived) if archived is not None else described)


def status_line(server: TorchServe, model: str) -> tuple[bool, str]:
    """(enough READY workers, one line: the served version, READY workers, the addresses)."""
    description = server.describe(model)
    ready = count_ready(description)
    wanted = _configured_min_workers(server, model, int(description.get("minWorkers", 1)))
    line = (f"TorchServe is serving {model} version {description.get('modelVersion')} with "
            f"{ready} READY worker(s) (minWorkers {wanted}) at {server.endpoints.inference} "
            f"(management {server.endpoints.management}, metrics {server.endpoints.metrics}/metrics, "
            f"health {server.endpoints.health}/ready)")
    if ready < wanted:
        return False, f"{line}: fewer READY workers than minWorkers"
    return True, line


def settled_status(server: TorchServe, model: str, timeout: float) -> str:
    """The status line once minWorkers workers are READY (start returns at the first), or
    after `timeout` seconds, when the line says how many are missing."""
    last = (False, "")

    def settled() -> bool:
        nonlocal last
        last = status_line(server, model)
        return last[0]

    with contextlib.suppress(TimeoutError):
        wait_for(settled, timeout, "minWorkers READY workers", interval_s=0.5)
    return last[1]
