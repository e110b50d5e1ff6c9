"""Readiness and liveness on a real TorchServe with 1 worker (so that losing it matters):
scale it to 0, kill its worker under load, and drain it, watching the exec probe
(`python -m serving ready`), `status` and the key-less HTTP URL; and the container's entry
point after a preStop drain.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from bench import served_models
from serving.__main__ import main
from serving.archive import build_archive
from serving.polling import wait_for
from serving.properties import REPO_ROOT
from serving.server import TorchServe, config_on_free_ports
from tests.helpers.torchserve import served_archive

MODEL_CONFIG = """\
batchSize: 4
maxBatchDelay: 5
minWorkers: 1
maxWorkers: 2
responseTimeout: 30
handler:
  max_chars: 1000
  max_texts: 64
  num_threads: 1
"""
# The readiness bound: false within 2 s of the last worker going away.
READY_BOUND_S = 2.0


@pytest.fixture(scope="module")
def served(tiny_artifacts, tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java 17+")
    with served_archive(tiny_artifacts, tmp_path_factory.mktemp("health"), MODEL_CONFIG) as ts:
        yield ts


def _cli(ts: TorchServe, command: str) -> int:
    return main([command, "--workdir", str(ts.workdir), "--config", str(ts.config)])


def _http_ready(ts: TorchServe) -> int:
    return requests.get(f"{ts.endpoints.health}/ready", timeout=5).status_code


def test_all_three_checks_say_healthy_when_serving(served, capsys):
    assert _cli(served, "ready") == 0 and _cli(served, "live") == 0 and _cli(served, "status") == 0
    assert "canary answered" in capsys.readouterr().out
    assert _http_ready(served) == 200
    assert requests.get(f"{served.endpoints.health}/live", timeout=5).status_code == 200


def test_scaled_to_zero_is_not_ready_within_the_bound_and_back_to_two_is(served, capsys):
    try:
        served.scale("news_cnn", 0)
        scaled = time.monotonic()
        wait_for(lambda: _cli(served, "ready") != 0, READY_BOUND_S,
                 "the exec probe to say not ready after scaling to 0")
        assert _cli(served, "status") != 0
        # The HTTP probe may answer from a check up to CACHE_S old: still within the bound.
        wait_for(lambda: _http_ready(served) == 503, READY_BOUND_S - (time.monotonic() - scaled),
                 "the HTTP readiness URL to answer 503 after scaling to 0")
        err = capsys.readouterr().err
        assert "0 READY workers" in err and "fewer READY workers than minWorkers" in err
        # /ping, the frontend heartbeat, still says Healthy: liveness is not readiness.
        assert _cli(served, "live") == 0
        served.scale("news_cnn", 2)
        wait_for(lambda: _cli(served, "ready") == 0, 30, "ready again with 2 workers")
        assert _cli(served, "status") == 0 and _http_ready(served) == 200
    finally:
        served.scale("news_cnn", 1)


def test_a_killed_worker_under_load_makes_readiness_false_then_true(served):
    stop = threading.Event()
    answered = []

    def load() -> None:
        while not stop.is_set():
            try:
                answered.append(requests.post(f"{served.endpoints.inference}/predictions/news_cnn",
                                              json={"text": "Oil prices rise"}, timeout=10,
                                              headers=served.keys().headers("inference")).status_code)
            except requests.RequestException:
                answered.append(0)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: answered.count(200) >= 50, 30, "50 answers under load")
        (victim,) = served_models.worker_pids(served, "news_cnn")
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: _http_ready(served) == 503, READY_BOUND_S,
                 "the HTTP readiness URL to answer 503 after the only worker was killed")
        wait_for(lambda: _http_ready(served) == 200, 90, "ready again after the restart", interval_s=0.2)
        assert _cli(served, "ready") == 0
        assert victim not in served_models.worker_pids(served, "news_cnn")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert answered[-1] == 200


def test_drain_turns_readiness_false_first_and_waits_for_quiet(served):
    report = served.drain(notice_s=0, quiet_s=0.5)
    try:
        assert _http_ready(served) == 503 and _cli(served, "ready") != 0
        assert report["quiet"] and report["waited_s"] < 10
    finally:
        served.health.undrain()
    wait_for(lambda: _http_ready(served) == 200, 5, "ready again after undrain")


def test_the_container_entry_point_after_a_prestop_drain_stops_without_draining_again(
        tiny_artifacts, tmp_path):
    """What Kubernetes does: `run` serves, the preStop hook runs `drain`, then SIGTERM."""
    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java 17+")
    build_archive(tiny_artifacts, tmp_path / "model_store")
    ts = TorchServe(tmp_path, config_on_free_ports(tmp_path, tmp_path / "model_store", workers=1))
    where = ["--workdir", str(tmp_path), "--config", str(ts.config)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "serving", "run", *where, "--timeout", "150"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_for(lambda: run.poll() is None and ts.health.ready().ok, 180, "the entry point's server ready",
                 interval_s=0.5)
        drain = subprocess.run([sys.executable, "-m", "serving", "drain", "--notice", "0", *where],
                               capture_output=True, text=True, env=env, timeout=60)
        assert drain.returncode == 0 and "drained in" in drain.stdout
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
        ts.stop()
    assert run.returncode == 0, out
    assert "without a second drain" in out and "waiting for in-flight requests" not in out
    assert ts.pid() is None and not ts.health.drain_file.exists()
