"""The container's supervisor (`news-cnn run`, the image's entry point): start TorchServe,
stay while it runs, and stop it gracefully on SIGTERM/SIGINT."""
from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

from serving.status import settled_status

if TYPE_CHECKING:
    from serving.server import TorchServe


def supervise(server: TorchServe, model: str, timeout: float, notice_s: float) -> int:
    """Start TorchServe and stay until SIGTERM/SIGINT (then drain, unless a preStop hook already
    did, and stop, within SHUTDOWN_BOUND_S of the drain's start) or until it dies; the exit
    status."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server.start(model, timeout)
    print(settled_status(server, model, timeout), flush=True)
    while not stopping.wait(2.0):
        if server.pid() is None:
            print("error: TorchServe exited on its own; see logs/", file=sys.stderr)
            server.stop_probe()
            return 1
    if server.drain_started() is None:
        print("SIGTERM: readiness false, waiting for in-flight requests ...", flush=True)
    else:
        print("SIGTERM after a drain (preStop hook): stopping without a second drain ...", flush=True)
    report = server.graceful_stop(notice_s)
    if report["drained_before"]:
        print(f"TorchServe stopped; the drain had begun {report['waited_s']} s before.", flush=True)
    else:
        print(f"TorchServe stopped after draining {server.drained(report)}.", flush=True)
    return 0
