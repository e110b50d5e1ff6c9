"""The archived model answered by a pool of processes, one per core: files scored offline at
the machine's limit (`news-cnn predict --archive news_cnn.mar --file ...`).

Each worker process loads the archive once (serving/offline.py's `OfflineModel`, 1 torch
thread) and answers whole requests. `ArchivePool` is a client `Model`, so client/sending.py
orders the answers, splits requests around a refused headline, and shows progress as with
the server. One process with torch's threads reached 0.73 of the limit: torch parallelises
little of a small CNN, and the handler's Python (tokenising, JSON) runs on one core. The
workers are spawned, not forked: a fork of a process running torch's thread pool can hang.
"""
from __future__ import annotations

import atexit
import io
import json
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import IO

from client.api import ClientError, HandlerClient, check_answer
from serving.offline import OfflineError, OfflineModel
from training.config import available_cores

# Headlines per request offline (the served default is 64): one request is one forward pass,
# and a pass of 512 costs the worker less per headline, with no other client to wait behind it.
OFFLINE_MAX_TEXTS = 512

# The worker process's model, loaded once by `_load`: module state, but only in the workers.
_worker: dict = {}


def _load(source: str, handler_settings: dict) -> None:
    """A worker's start: the archive loaded once; Ctrl-C is the parent's to handle (a worker
    killed by it would break the pool instead of letting the run say what it wrote)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings = io.StringIO()
    try:
        _worker["model"] = OfflineModel(source, warn=warnings, handler_settings=handler_settings)
    except OfflineError as err:
        _worker["error"] = str(err)
    _worker["warnings"] = warnings.getvalue()
    atexit.register(_exit_now)


def _exit_now() -> None:
    """A worker's end, once the pool has told it to stop: remove the unpacked archive and exit
    without the interpreter's shutdown, which tears down torch's modules for 0.35 s while the
    command waits (every run pays it). Nothing is left to flush: answers went back through
    the pool's queue as each request finished."""
    if "model" in _worker:
        _worker["model"].close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _model() -> OfflineModel:
    """The worker's model; OfflineError when it could not be loaded."""
    if "error" in _worker:
        raise OfflineError(_worker["error"])
    return _worker["model"]


def _describe() -> tuple[str, dict]:
    """(the load's warnings, the handler's metadata)."""
    return _worker["warnings"], _model().metadata()


def _call(body: object, explain: bool) -> tuple[int, object]:
    """One request in a worker: (status, the handler's JSON text)."""
    # The handler's JSON text goes back as it is, decoded once in the parent: less CPU in all
    # than decoding it here and pickling the answers (240,000 headlines: 14.0 and 13.7 CPU
    # seconds against 15.7 and 14.4, alternating runs on a shared 2-core machine).
    return _model().call(body, explain, decode=False)


class ArchivePool(HandlerClient):
    """`workers` processes, each answering requests with the archive loaded once. Use as a
    context manager (the workers end on exit). OfflineError when the archive cannot be loaded."""

    def __init__(self, source: str | Path, workers: int | None = None, max_texts: int = OFFLINE_MAX_TEXTS,
                 warn: IO[str] | None = None) -> None:
        self.workers = workers or available_cores()
        if self.workers < 1:
            raise ValueError(f"workers must be 1 or more, not {self.workers}")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_load,
                                         initargs=(str(source), {"max_texts": max_texts}))
        try:
            # One task per worker at once: the pool starts a process for each, so that all
            # load the archive side by side, not one after another as requests come.
            described = [self._pool.submit(_describe) for _ in range(self.workers)]
            warnings, self._metadata = described[0].result()
            for future in described[1:]:
                future.result()
        except BrokenProcessPool as err:
            self.close()
            raise OfflineError(f"the worker processes loading {source} ended: {err}") from None
        except BaseException:
            self.close()
            raise
        if warnings:
            print(warnings, end="", file=warn or sys.stderr)

    def send(self, body: dict, explain: bool = False) -> object:
        """The answer to one request from the next free worker, or the ClientError it stands for."""
        try:
            status, answer = self._pool.submit(_call, body, explain).result()
        except BrokenProcessPool as err:
            raise ClientError(f"a worker process scoring the archive ended: {err}") from None
        return check_answer(status, json.loads(answer) if isinstance(answer, (str, bytes)) else answer)

    def metadata(self) -> dict:
        """The handler's description of itself (max_texts is the pool's)."""
        return self._metadata

    def close(self) -> None:
        """End the workers (requests not yet taken are dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ArchivePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
