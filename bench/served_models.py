"""TorchServe serving several named archives for the bench (on top of serving.server), and
its worker processes (for CPU time, resident memory, and kill -9)."""
from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

import psutil

from bench.harness import Target
from serving.polling import wait_for
from serving.server import ServerError, TorchServe, config_on_free_ports

WORKER_SCRIPT = "model_service_worker.py"


def start(workdir: Path, model_store: Path, models: dict[str, str], workers: int = 1,
          timeout_s: float = 300, **overrides: object) -> TorchServe:
    """Start TorchServe from `workdir` loading `models` ({name: file.mar} in `model_store`)
    with the project's config.properties on free ports (`overrides` change its entries), and
    wait until each model has `workers` READY workers."""
    workdir.mkdir(parents=True, exist_ok=True)
    load_models = ",".join(f"{name}={mar}" for name, mar in models.items())
    config = config_on_free_ports(workdir, model_store, workers=workers, load_models=load_models, **overrides)
    server = TorchServe(workdir, config)
    server.start(model=None, timeout=timeout_s)
    try:
        wait_models(server, models, workers, timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def wait_models(server: TorchServe, models: Iterable[str], workers: int = 1,
                timeout_s: float = 300) -> None:
    """Wait until every model has at least `workers` READY workers (ServerError otherwise)."""
    models = list(models)
    try:
        # OSError: serving.rest's CallFailed (no answer yet, or 404 before the model registers).
        wait_for(lambda: all(server.ready_workers(m) >= workers for m in models), timeout_s,
                 f"{models} with {workers} READY worker(s)", interval_s=0.2,
                 not_yet=(OSError, ValueError, IndexError, KeyError),
                 gone=lambda: None if server.pid() else "TorchServe exited")
    except (RuntimeError, TimeoutError) as err:
        raise ServerError(f"{err}; see {server.workdir / 'logs'}") from None


def target(server: TorchServe, path: str) -> Target:
    """`path` of the server's inference API (e.g. /predictions/news_cnn) as a load target."""
    return Target(path, server.endpoints.inference + path,
                  lambda: server.keys().headers("inference")["Authorization"])


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU seconds so far of each process (0.0 for one that has gone)."""
    out = dict.fromkeys(procs, 0.0)
    for name, p in procs.items():
        with suppress(psutil.Error):
            t = p.cpu_times()
            out[name] = t.user + t.system
    return out


def worker_processes(server: TorchServe, model: str | None = None) -> list[psutil.Process]:
    """The Python worker processes under the Java frontend (only `model`'s, when given)."""
    pid = server.pid()
    if pid is None:
        return []
    try:
        workers = [p for p in psutil.Process(pid).children()
                   if any(WORKER_SCRIPT in part for part in p.cmdline())]
    except psutil.Error:
        return []
    if model is None:
        return workers
    pids = set(worker_pids(server, model))
    return [p for p in workers if p.pid in pids]


def worker_rss(server: TorchServe, model: str | None = None) -> dict[int, float]:
    """Resident memory of each worker process, in MiB (unrounded), by pid."""
    sizes = {}
    for p in worker_processes(server, model):
        with suppress(psutil.Error):  # the worker exited since it was listed
            sizes[p.pid] = p.memory_info().rss / 2**20
    return sizes


def worker_pids(server: TorchServe, model: str) -> list[int]:
    """The worker pids the management API reports for `model`, sorted."""
    return sorted(w["pid"] for w in server.describe(model).get("workers", []) if w.get("pid"))
