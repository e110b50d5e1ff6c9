"""Start, watch and stop a TorchServe process in a directory of its own, with the key-less
health server (`python -m serving probe`, serving/probe.py) beside it at `health_address`.

TorchServe writes key_file.json and logs/ in the directory it starts from, and its pid file
and unpacked archives in the temp directory: TMPDIR points at `<workdir>/logs/tmp`, so that
servers started side by side (tests, benchmarks, `make serve`) never share them.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import psutil

from serving import keys as keyfile
from serving import management, rest
from serving.health import (
    DRAIN_BOUND_S,
    DRAIN_POLL_TIMEOUT_S,
    DRAIN_QUIET_S,
    PROBE_STOP_S,
    SHUTDOWN_BOUND_S,
    STOP_BOUND_S,
    HealthChecker,
)
from serving.management import count_ready, scale_workers
from serving.polling import wait_for
from serving.ports import taken_ports_message
from serving.properties import (
    DEFAULT_CONFIG,
    METRICS_CONFIG,
    MODEL_NAME,
    REPO_ROOT,
    Endpoints,
    open_management,
    read_properties,
    token_auth_enabled,
    write_properties,
)

PID_FILE = ".model_server.pid"  # TorchServe's name, inside its temp directory
PROBE_PID_FILE = "probe.pid"  # the health server's, in the same directory
# TorchServe and its workers create files readable by their user only (keys from the first byte).
PRIVATE_UMASK = 0o077


class ServerError(RuntimeError):
    """TorchServe did not start, become ready, or stop as asked."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (sockets held open together so none repeats)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def config_on_free_ports(workdir: str | Path, model_store: str | Path, workers: int = 1,
                         base: str | Path = DEFAULT_CONFIG, **overrides: object) -> Path:
    """Write `<workdir>/config.properties`: `base` on free loopback ports, with absolute paths
    to `model_store` and the metrics config, and `overrides` applied (tests, benchmarks)."""
    *http_ports, grpc_inference, grpc_management = free_ports(6)
    # TorchServe always opens its gRPC ports too (7070/7071 unless told otherwise): two
    # servers on the default ones would clash, so they get free ports as well.
    settings = {**Endpoints.on_ports(*http_ports).as_properties(), "grpc_inference_port": grpc_inference,
                "grpc_management_port": grpc_management, "model_store": Path(model_store).resolve(),
                "metrics_config": METRICS_CONFIG, "default_workers_per_model": workers, **overrides}
    return write_properties(Path(workdir) / "config.properties", base, **settings)


def _executable(name: str) -> str:
    """A console script of this virtual environment (next to its python), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class TorchServe:
    """One TorchServe process started from `workdir` with the config.properties `config`."""

    def __init__(self, workdir: str | Path = ".", config: str | Path = DEFAULT_CONFIG) -> None:
        self.workdir = Path(workdir).resolve()
        self.config = Path(config) if Path(config).is_absolute() else self.workdir / config
        self.endpoints = Endpoints.from_file(self.config)
        self.key_file = self.workdir / keyfile.KEY_FILE
        self.tmp_dir = self.workdir / "logs" / "tmp"
        self.log_file = self.workdir / "logs" / "torchserve.out"
        self.token_auth = token_auth_enabled(read_properties(self.config))

    # -- process -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """TorchServe's environment: its own temp dir, and no PYTHONPATH, so that the worker
        imports the `model` and `handler` shipped in the .mar, not the checkout's."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(TMPDIR=str(self.tmp_dir), TEMP=str(self.tmp_dir))
        return env

    def pid(self) -> int | None:
        """The Java frontend's pid if it is running, else None."""
        try:
            pid = int((self.tmp_dir / PID_FILE).read_text().split()[0])
            return pid if psutil.Process(pid).is_running() else None
        except (OSError, ValueError, IndexError, psutil.Error):
            return None

    def start(self, model: str | None = MODEL_NAME, timeout: float = 240) -> TorchServe:
        """Start TorchServe and its health server, and wait until it serves `model`."""
        running = self.pid()
        if running is not None:
            raise ServerError(f"a TorchServe started from {self.workdir} is already running "
                              f"(pid {running}): stop it first (`make stop`)")
        problem = open_management(read_properties(self.config)) or taken_ports_message(self.config)
        if problem:
            raise ServerError(problem)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.key_file.unlink(missing_ok=True)  # a stale file would hold old keys
        with open(self.log_file, "ab") as log:
            # TorchServe writes key_file.json at its umask and only then makes it 0600: under
            # PRIVATE_UMASK no other user can read the keys in between (nor its logs, ever).
            launcher = subprocess.run(
                [_executable("torchserve"), "--start", "--ncs", "--ts-config", str(self.config)],
                cwd=self.workdir, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, umask=PRIVATE_UMASK, timeout=60, check=False)
        if launcher.returncode != 0:
            raise ServerError(f"torchserve --start failed ({launcher.returncode}); see {self.log_file}")
        try:
            self.health.undrain()
            self.start_probe()
            self.wait_ready(model, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_probe(self, timeout: float = 15) -> None:
        """Start the health server (`python -m serving probe`) and wait until it listens."""
        self.stop_probe()
        with open(self.workdir / "logs" / "probe.log", "ab") as log:
            probe = subprocess.Popen(
                [sys.executable, "-m", "serving", "probe", "--workdir", str(self.workdir),
                 "--config", str(self.config)],
                cwd=self.workdir, env={**self.env(), "PYTHONPATH": str(REPO_ROOT)},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (self.tmp_dir / PROBE_PID_FILE).write_text(str(probe.pid))
        exited = f"the health server exited; see {self.workdir / 'logs' / 'probe.log'}"
        try:
            wait_for(lambda: rest.request("GET", f"{self.endpoints.health}/live", 2), timeout,
                     f"the health server on {self.endpoints.health}", interval_s=0.1, not_yet=(OSError,),
                     gone=lambda: exited if probe.poll() is not None else None)
        except (TimeoutError, RuntimeError) as err:
            raise ServerError(str(err)) from None

    def stop_probe(self) -> None:
        """Stop the health server, if one runs for this directory."""
        path = self.tmp_dir / PROBE_PID_FILE
        with suppress(OSError, ValueError, psutil.Error):
            probe = psutil.Process(int(path.read_text()))
            if any("serving" in part for part in probe.cmdline()):
                probe.terminate()
                probe.wait(PROBE_STOP_S)
        path.unlink(missing_ok=True)

    def drain(self, notice_s: float = 0.0, bound_s: float = DRAIN_BOUND_S,
              quiet_s: float = DRAIN_QUIET_S) -> dict:
        """Make readiness false, give balancers `notice_s` to see it, then wait (at most
        `bound_s` in all) until no request is queued and none has arrived for `quiet_s`.
        Returns {"waited_s", "quiet"}: quiet False means the bound ended the wait."""
        started = time.monotonic()
        self.health.drain()
        time.sleep(min(notice_s, bound_s))
        last_count, quiet_since = None, time.monotonic()
        while time.monotonic() < started + bound_s:
            count, pending = self._request_count(), self._pending()
            if count != last_count or pending:
                last_count, quiet_since = count, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return {"waited_s": round(time.monotonic() - started, 2), "quiet": True}
            time.sleep(0.1)
        return {"waited_s": round(time.monotonic() - started, 2), "quiet": False}

    @staticmethod
    def drained(report: dict) -> str:
        """How long a drain waited, and whether its bound cut it short, for a message."""
        bound = "" if report["quiet"] else " (bound reached with requests still arriving)"
        return f"{report['waited_s']} s{bound}"

    def _request_count(self) -> float | None:
        """TorchServe's count of inference requests received (metrics API), None if unknown."""
        try:
            text = rest.request("GET", f"{self.endpoints.metrics}/metrics", DRAIN_POLL_TIMEOUT_S,
                                params={"name[]": "ts_inference_requests_total"}).text
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("ts_inference_requests_total"))
        except (OSError, ValueError, IndexError):
            return None

    def _pending(self, model: str = MODEL_NAME) -> int:
        """Requests waiting in `model`'s queue (0 when TorchServe cannot say)."""
        try:
            described = self.describe(model, timeout=DRAIN_POLL_TIMEOUT_S)
            return int(described.get("jobQueueStatus", {}).get("pendingRequests", 0))
        except (OSError, ValueError, IndexError, KeyError):
            return 0

    def graceful_stop(self, notice_s: float = 0.0) -> dict:
        """Drain unless a drain already began (a preStop hook ran `python -m serving drain`),
        then stop with what is left of SHUTDOWN_BOUND_S from the drain's start (at least 1 s).
        Returns drain's report plus "drained_before" (then "waited_s" is the time since)."""
        began = self.drain_started()
        if began is None:
            deadline = time.monotonic() + SHUTDOWN_BOUND_S
            report = {**self.drain(notice_s), "drained_before": False}
        else:
            ago = max(0.0, time.time() - began)
            deadline = time.monotonic() + SHUTDOWN_BOUND_S - ago
            report = {"waited_s": round(ago, 2), "quiet": True, "drained_before": True}
        self.stop(timeout=max(1.0, deadline - time.monotonic() - PROBE_STOP_S))
        return report

    def drain_started(self) -> float | None:
        """When (time.time()) the current drain began: the drain marker's mtime; None if none."""
        try:
            return self.health.drain_file.stat().st_mtime
        except FileNotFoundError:
            return None

    def stop(self, timeout: float = STOP_BOUND_S) -> bool:
        """`torchserve --stop` and a wait for the frontend to exit, within `timeout`, SIGKILL to
        its process group, and the health server's stop (`drain` first for a graceful stop).
        Returns True when a server was running."""
        pid = self.pid()
        if pid is None:
            self.stop_probe()
            return False
        try:
            group = os.getpgid(pid)
        except OSError:
            group = None
        deadline = time.monotonic() + timeout
        with suppress(subprocess.TimeoutExpired):  # the SIGKILL below ends what it was asked to stop
            subprocess.run([_executable("torchserve"), "--stop"], cwd=self.workdir, env=self.env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False)
        # Hung: killed with its group below; already gone: nothing to wait for.
        with suppress(psutil.TimeoutExpired, psutil.NoSuchProcess):
            psutil.Process(pid).wait(max(0.0, deadline - time.monotonic()))
        # Workers (and a hung frontend) die with the process group the launcher created.
        if group is not None and group != os.getpgid(0):
            with suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        (self.tmp_dir / PID_FILE).unlink(missing_ok=True)
        self.key_file.unlink(missing_ok=True)
        self.stop_probe()
        self.health.undrain()
        return True

    def __enter__(self) -> TorchServe:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- API calls -----------------------------------------------------------------------
    @property
    def health(self) -> HealthChecker:
        """Readiness and liveness checks of this server (serving/health.py)."""
        return HealthChecker.for_server(self.workdir, self.config)

    def keys(self) -> keyfile.Keys:
        """Current keys from key_file.json (never renewed here: see serving/keys.py)."""
        return keyfile.read_keys(self.key_file)

    def auth(self, kind: str) -> dict[str, str]:
        """The Authorization header for the `kind` API ({} when token auth is off)."""
        return self.keys().headers(kind) if self.token_auth else {}

    def ping(self, timeout: float = 5) -> bool:
        """True when /ping answers Healthy (with the inference key)."""
        try:
            response = rest.request("GET", f"{self.endpoints.inference}/ping", timeout,
                                    self.auth("inference"))
            return response.status == 200 and response.json().get("status") == "Healthy"
        except (OSError, ValueError, AttributeError, KeyError):
            return False

    def describe(self, model: str = MODEL_NAME, customized: bool = False, timeout: float = 30) -> dict:
        """The management API's description of `model` (workers, batch settings, version)."""
        return management.describe(self.endpoints.management, model, self.auth("management"), timeout,
                                   customized)

    def ready_workers(self, model: str = MODEL_NAME) -> int:
        """How many of `model`'s workers are READY."""
        return count_ready(self.describe(model))

    def scale(self, model: str, workers: int, timeout: float = 120) -> dict:
        """Set `model`'s worker count and wait until TorchServe has done it (resending when
        TorchServe asks to: see serving/management.py). Raises ScaleError when it cannot."""
        return scale_workers(self.endpoints.management, model, workers,
                             lambda: self.auth("management"), timeout)

    def log_warnings(self, limit: int = 20) -> list[str]:
        """The last `limit` WARN or ERROR lines of TorchServe's own log (logs/ts_log.log)."""
        try:
            lines = (self.workdir / "logs" / "ts_log.log").read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if "[WARN " in line or "[ERROR]" in line][-limit:]

    def wait_ready(self, model: str | None = MODEL_NAME, timeout: float = 240) -> None:
        """Poll until /ping is healthy and (if `model`) one of its workers is READY."""
        started = time.monotonic()

        def exited() -> str | None:
            if self.pid() is not None or time.monotonic() < started + 10:
                return None
            # E.g. taken since the check in start; the health port is our own probe's by now.
            taken = taken_ports_message(self.config, skip=frozenset({"health_address"}))
            return (f"TorchServe exited while starting{': ' + taken if taken else ''}; "
                    f"see {self.log_file} and {self.workdir / 'logs'}")

        def ready() -> bool:
            return ((self.key_file.is_file() or not self.token_auth) and self.ping()
                    and (model is None or self.ready_workers(model) > 0))

        try:
            wait_for(ready, timeout, f"{model} to be ready", interval_s=0.5,
                     not_yet=(OSError, ValueError, IndexError), gone=exited)
        except TimeoutError:
            raise ServerError(f"TorchServe was not ready with {model} after {timeout:.0f} s; "
                              f"see {self.workdir / 'logs'}") from None
        except RuntimeError as err:
            raise ServerError(str(err)) from None
