"""The servers `make bench-peers` compares: their names, where to reach them, how the peers
are started and stopped (TorchServe: bench.served_models)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Target
from serving import rest
from serving.polling import wait_for
from serving.properties import MODEL_NAME
from serving.server import TorchServe, free_port

TORCHSERVE = "torchserve"
FASTAPI = "fastapi"
FASTAPI_BATCHED = "fastapi-batched"
RAY_SERVE = "ray-serve"
LITSERVE = "litserve"
BENTOML = "bentoml"
SERVERS = (TORCHSERVE, FASTAPI, FASTAPI_BATCHED, RAY_SERVE, LITSERVE, BENTOML)
PEERS = SERVERS[1:]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Endpoint:
    """One server under test: where to send load, with which Authorization header."""

    server: str
    base_url: str
    predictions: str
    explanations: str
    auth: Callable[[], str | None] = lambda: None

    def headers(self) -> dict[str, str]:
        """Headers for checked requests."""
        value = self.auth()
        return {"Authorization": value} if value else {}

    def target(self, explanations: bool = False) -> Target:
        """Its /predictions (or /explanations) as a load target."""
        path = self.explanations if explanations else self.predictions
        return Target(f"{self.server} {path}", self.base_url + path, self.auth)


class PeerProcess:
    """A peer server started in a session of its own (stopped with its whole process group)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True, cwd=ROOT)

    def wait_ready(self, endpoint: Endpoint, text: str, timeout_s: float) -> None:
        """Until one prediction is answered; RuntimeError (with the log's tail) otherwise."""
        def answered() -> bool:
            url = endpoint.base_url + endpoint.predictions
            return rest.request("POST", url, 5, json_body={"text": text}).status == 200

        def exited() -> str | None:
            code = self.process.poll()
            return None if code is None else f"{self.name} exited ({code})"
        try:
            wait_for(answered, timeout_s, f"{self.name} to answer", interval_s=0.5,
                     not_yet=(OSError,), gone=exited)
        except (RuntimeError, TimeoutError) as err:
            try:  # the log's last lines, on one line
                tail = " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-5:])
            except OSError:
                tail = ""
            raise RuntimeError(f"{err}: {tail}") from None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after `timeout_s`."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout_s)
        # Workers (uvicorn's, Ray's) may outlive their parent: the group goes too.
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start_peer(name: str, artifacts_dir: Path, processes: int, max_batch: int, max_delay_ms: float,
               root: Path, max_latency_ms: int = 1000, litserve_timeout_ms: float = 1.0
               ) -> tuple[PeerProcess, Endpoint]:
    """Launch one peer with `processes` processes and its batcher's settings (`max_delay_ms`:
    the wait for a batch; LitServe's is `litserve_timeout_ms`; BentoML's adaptive wait stays
    within `max_latency_ms`), its log and state under `root`. Not yet ready: see wait_ready."""
    port = free_port()
    artifacts = str(artifacts_dir.resolve())
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    script = ["--artifacts", artifacts, "--port", str(port), "--max-batch", str(max_batch)]
    if name == LITSERVE:
        command = [sys.executable, "-m", "bench.peers.lit_serve", *script, "--workers", str(processes),
                   "--max-delay-ms", str(litserve_timeout_ms)]
    elif name == BENTOML:
        env.update(PEER_ARTIFACTS=artifacts, PEER_PROCESSES=str(processes), PEER_MAX_BATCH=str(max_batch),
                   PEER_MAX_LATENCY_MS=str(max_latency_ms), BENTOML_HOME=str(root / "bentoml"),
                   BENTOML_DO_NOT_TRACK="True")
        command = [sys.executable, "-m", "bentoml", "serve", "bench.peers.bento:NewsPeer",
                   "--working-dir", str(ROOT), "--host", "127.0.0.1", "--port", str(port)]
    elif name == RAY_SERVE:
        command = [sys.executable, "-m", "bench.peers.ray_serve", *script, "--replicas", str(processes),
                   "--max-delay-ms", str(max_delay_ms), "--temp-dir", str(root / "ray")]
    else:
        env.update(PEER_ARTIFACTS=artifacts, PEER_BATCHED="1" if name == FASTAPI_BATCHED else "0",
                   PEER_MAX_BATCH=str(max_batch), PEER_MAX_DELAY_MS=str(max_delay_ms))
        command = [sys.executable, "-m", "uvicorn", "bench.peers.apps:app_from_env", "--factory",
                   "--workers", str(processes), "--host", "127.0.0.1", "--port", str(port),
                   "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    process = PeerProcess(name, command, env, root / "logs" / f"{name}.log")
    return process, Endpoint(name, f"http://127.0.0.1:{port}", "/predictions", "/explanations")


def torchserve_endpoint(ts: TorchServe, model: str = MODEL_NAME) -> Endpoint:
    """The endpoint of one model of a bench TorchServe (keys read anew for each use)."""
    return Endpoint(f"{TORCHSERVE}:{model}" if model != MODEL_NAME else TORCHSERVE,
                    ts.endpoints.inference, f"/predictions/{model}", f"/explanations/{model}",
                    lambda: ts.keys().headers("inference")["Authorization"])
