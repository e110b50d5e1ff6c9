"""Readiness and liveness (serving/health.py, `python -m serving ready|live|status`) against a
fake TorchServe; tests/integration/test_health.py watches them on a real one.
"""
from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import zipfile

import psutil
import pytest
import requests

from serving import keys as keyfile
from serving.__main__ import main
from serving.archive import build_archive
from serving.health import (
    CANARY_FILE,
    CANARY_TIMEOUT_S,
    DRAIN_BOUND_S,
    PROBE_STOP_S,
    SHUTDOWN_BOUND_S,
    STOP_BOUND_S,
    TOLERATED_CANARY_TIMEOUTS,
    Canary,
    HealthChecker,
    Verdict,
    model_archive,
)
from serving.polling import wait_for
from serving.probe import CHECK_THREADS, REQUEST_TIMEOUT_S, ProbeServer
from serving.properties import REPO_ROOT, Endpoints
from serving.server import TorchServe, free_port
from tests.helpers import fake_http


# --- the checker against a fake TorchServe ---------------------------------------------
class _FakeTorchServe(fake_http.JSONHandler):
    """Management describe with `server.workers` READY workers; predictions answer `server.label`
    after `server.delay` seconds (a queue full of real traffic)."""

    def do_GET(self) -> None:  # noqa: N802
        workers = [{"status": "READY"}] * self.server.workers
        self.send_json(200, [{"modelName": "news_cnn", "minWorkers": 1, "workers": workers}])

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.canaries += 1
        time.sleep(self.server.delay)
        self.send_json(200, {"label": self.server.label, "probabilities": {self.server.label: 1.0}})


@pytest.fixture
def fake_checker(tmp_path):
    (tmp_path / keyfile.KEY_FILE).write_text(json.dumps(
        {"management": {"key": "m"}, "inference": {"key": "i"}, "API": {"key": "a"}}))
    with fake_http.serve(_FakeTorchServe, workers=1, label="Sports", canaries=0, delay=0.0) as (url, httpd):
        checker = HealthChecker(Endpoints(inference=url, management=url, metrics=url),
                                tmp_path / keyfile.KEY_FILE, Canary("Yankees win", "Sports"))
        yield checker, httpd


def test_ready_needs_a_ready_worker_and_the_canary_label(fake_checker):
    checker, httpd = fake_checker
    assert checker.ready().ok
    httpd.label = "World"
    verdict = checker.ready()
    assert not verdict.ok and "'World', expected 'Sports'" in verdict.reason
    httpd.label, httpd.workers = "Sports", 0
    verdict = checker.ready()
    assert not verdict.ok and "0 READY workers" in verdict.reason


def test_a_canary_timeout_with_ready_workers_is_tolerated_only_a_few_times_in_a_row(fake_checker):
    checker, httpd = fake_checker
    httpd.delay = CANARY_TIMEOUT_S + 0.5
    for _ in range(TOLERATED_CANARY_TIMEOUTS):
        verdict = checker.ready()
        assert verdict.ok and "no answer in" in verdict.reason
    verdict = checker.ready()
    assert not verdict.ok and f"{TOLERATED_CANARY_TIMEOUTS + 1} checks in a row" in verdict.reason
    # One answered canary starts the count again.
    httpd.delay = 0.0
    assert checker.ready().ok
    httpd.delay = CANARY_TIMEOUT_S + 0.5
    assert checker.ready().ok
    # No READY worker is not ready at once, and without waiting for a canary.
    httpd.workers = 0
    before = httpd.canaries
    assert not checker.ready().ok and httpd.canaries == before
    # A wrong label is never tolerated.
    httpd.workers, httpd.delay, httpd.label = 1, 0.0, "World"
    assert not checker.ready().ok


def test_a_one_shot_check_tolerates_no_canary_timeout(fake_checker):
    checker, httpd = fake_checker
    httpd.delay = CANARY_TIMEOUT_S + 0.5
    strict = HealthChecker(checker.endpoints, checker.key_file, checker.canary, tolerated_timeouts=0)
    verdict = strict.ready()
    assert not verdict.ok and "no answer in" in verdict.reason


def test_draining_makes_readiness_false_until_undrained(fake_checker):
    checker, _ = fake_checker
    checker.drain()
    assert checker.ready() == Verdict(False, "draining: TorchServe is being stopped")
    checker.undrain()
    assert checker.ready().ok


def test_no_key_file_means_not_ready_and_not_live(fake_checker):
    checker, _ = fake_checker
    checker.key_file.unlink()
    assert not checker.ready().ok and "not running" in checker.ready().reason
    assert not checker.live().ok


def test_probe_server_answers_without_a_key_and_shares_a_check_between_close_polls(fake_checker):
    checker, httpd = fake_checker
    probe = ProbeServer(("127.0.0.1", 0), checker)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{probe.server_address[1]}"
    try:
        first = requests.get(f"{url}/ready", timeout=5)
        assert first.status_code == 200 and first.json()["ready"] is True
        requests.get(f"{url}/ready", timeout=5)
        assert httpd.canaries == 1  # the second poll came within CACHE_S
        httpd.workers = 0
        time.sleep(0.3)
        refused = requests.get(f"{url}/ready", timeout=5)
        assert refused.status_code == 503 and "0 READY" in refused.json()["reason"]
        other = requests.get(f"{url}/models", timeout=5)
        assert other.status_code == 404 and "message" in other.json()
    finally:
        probe.shutdown()
        probe.server_close()


def test_reasons_name_no_path(fake_checker):
    """The probe server answers anyone without a key: its reasons must not map the disk."""
    checker, _ = fake_checker
    checker.key_file.unlink()
    reasons = [checker.ready().reason, checker.live().reason]
    checker.key_file.write_text("{not json")
    reasons.append(checker.ready().reason)
    assert "cannot read the key file" in reasons[-1]
    for reason in reasons:
        assert str(checker.key_file.parent) not in reason and "/" not in reason, reason


@pytest.fixture
def probe(fake_checker, tmp_path):
    """`python -m serving probe` in a process of its own (as `make serve` and the image run
    it) over the fake TorchServe: (base URL, its psutil.Process)."""
    checker, _ = fake_checker
    port = free_port()
    (tmp_path / "config.properties").write_text(
        f"inference_address={checker.endpoints.inference}\nmanagement_address={checker.endpoints.management}\n"
        f"health_address=http://127.0.0.1:{port}\nmodel_store=store\n")
    process = subprocess.Popen([sys.executable, "-m", "serving", "probe", "--workdir", str(tmp_path)],
                               cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/live"), 15, "the probe server to answer /live")
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _half_requests(port: int, count: int) -> list[socket.socket]:
    """`count` connections that each sent half a request head and then went quiet."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /ready HTTP/1.1\r\nHost: probe\r\n")
        opened.append(sock)
    return opened


def test_many_idle_connections_neither_delay_readiness_nor_hold_threads(probe):
    """3,000 connections each holding half a request, then all dropped at once: /ready keeps
    answering within 1 s throughout, and the server holds no thread per connection."""
    url, process = probe
    port = int(url.rsplit(":", 1)[1])
    # This process holds the 3,000 client sockets: a common default of 1,024 open files is too
    # few, so raise the soft limit up to the hard one for the test.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3000 + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    latencies, idle, threads, stop = [], [], [], threading.Event()

    def poll() -> None:
        while not stop.is_set():
            start = time.monotonic()
            status = requests.get(f"{url}/ready", timeout=5).status_code
            latencies.append((time.monotonic() - start, status))
            threads.append(process.num_threads())
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for _ in range(30):  # 100 every 0.05 s: a flood of new connections is the kernel's business
            idle += _half_requests(port, 100)
            time.sleep(0.05)
        for sock in idle:
            sock.close()
        time.sleep(1.0)
    finally:
        stop.set()
        poller.join()
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(latencies) >= 10
    assert all(status == 200 for _, status in latencies)
    assert max(seconds for seconds, _ in latencies) < 1.0
    assert max(threads) <= 1 + CHECK_THREADS + 1  # main, checks, the loop's one helper at most


def test_a_half_sent_request_is_closed_after_the_timeout(probe):
    url, _ = probe
    (sock,) = _half_requests(int(url.rsplit(":", 1)[1]), 1)
    start = time.monotonic()
    sock.settimeout(REQUEST_TIMEOUT_S + 3)
    assert sock.recv(1024) == b""  # closed by the server, no answer
    assert time.monotonic() - start < REQUEST_TIMEOUT_S + 1
    sock.close()
    assert requests.head(f"{url}/live", timeout=5).status_code == 200


def test_canary_and_model_archive_come_from_the_config(tiny_artifacts, tmp_path):
    mar = build_archive(tiny_artifacts, tmp_path / "store")
    canary = json.loads(zipfile.ZipFile(mar).read(CANARY_FILE))
    assert Canary.from_archive(mar) == Canary(canary["text"], canary["label"])
    (tmp_path / "config.properties").write_text("model_store=store\nload_models=news_cnn=news_cnn.mar\n")
    assert model_archive(tmp_path / "config.properties") == tmp_path / "store" / "news_cnn.mar"
    assert Canary.from_archive(tmp_path / "missing.mar").label is None


# --- SIGTERM after a preStop drain does not drain again ---------------------------------
@pytest.fixture
def stopping(tmp_path, monkeypatch):
    """A TorchServe whose drain and stop only record how they were called."""
    (tmp_path / "config.properties").write_text("inference_address=http://127.0.0.1:1\n")
    server = TorchServe(tmp_path, "config.properties")
    calls: dict[str, list[float]] = {"drain": [], "stop": []}

    def drain(notice_s: float = 0.0) -> dict:
        calls["drain"].append(notice_s)
        return {"waited_s": 0.0, "quiet": True}

    def stop(timeout: float = STOP_BOUND_S, **_) -> bool:
        calls["stop"].append(timeout)
        return True

    monkeypatch.setattr(server, "drain", drain)
    monkeypatch.setattr(server, "stop", stop)
    return server, calls


def test_sigterm_after_a_prestop_drain_stops_without_a_second_drain(stopping):
    server, calls = stopping
    server.health.drain()
    began = time.time() - 20  # the preStop hook drained for 20 s
    os.utime(server.health.drain_file, (began, began))
    report = server.graceful_stop(notice_s=5)
    assert calls["drain"] == [] and report["drained_before"]
    assert report["waited_s"] == pytest.approx(20, abs=1)
    # The stop gets what the drain left of the shared deadline.
    (timeout,) = calls["stop"]
    assert timeout == pytest.approx(SHUTDOWN_BOUND_S - 20 - PROBE_STOP_S, abs=1)


def test_a_drain_that_overran_leaves_the_stop_its_minimum(stopping):
    server, calls = stopping
    server.health.drain()
    began = time.time() - SHUTDOWN_BOUND_S
    os.utime(server.health.drain_file, (began, began))
    server.graceful_stop()
    assert calls["drain"] == [] and calls["stop"] == [1.0]


def test_sigterm_without_a_drain_drains_first(stopping):
    server, calls = stopping
    report = server.graceful_stop(notice_s=2)
    assert calls["drain"] == [2] and not report["drained_before"]
    (timeout,) = calls["stop"]
    assert DRAIN_BOUND_S + STOP_BOUND_S - 1 <= timeout <= DRAIN_BOUND_S + STOP_BOUND_S


# --- `python -m serving keys` and commands without a server ---------------------------
@pytest.fixture
def key_dir(tmp_path):
    (tmp_path / "config.properties").write_text("inference_address=http://127.0.0.1:1\n")
    (tmp_path / keyfile.KEY_FILE).write_text(json.dumps(
        {"management": {"key": "mkey", "expiration time": "2999-01-01T00:00:00Z"},
         "inference": {"key": "ikey", "expiration time": "2999-01-01T00:00:00Z"},
         "API": {"key": "apikey"}}))
    return tmp_path


def test_keys_shows_the_file_and_two_keys_and_the_api_key_only_when_asked(key_dir, capsys):
    args = ["keys", "--workdir", str(key_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert str(key_dir / keyfile.KEY_FILE) in out and "ikey" in out and "mkey" in out
    assert "apikey" not in out
    assert main(args + ["--api"]) == 0 and "apikey" in capsys.readouterr().out
    assert main(args + ["--show", "inference"]) == 0 and capsys.readouterr().out == "ikey\n"


def test_ready_and_status_without_a_server_exit_1_with_one_line(key_dir, capsys):
    for command in ("ready", "status", "live"):
        assert main([command, "--workdir", str(key_dir)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not running" in err[0]


def test_example_curls_read_the_key_from_the_file_instead_of_printing_it(key_dir):
    from serving.__main__ import examples
    text = examples(TorchServe(key_dir, "config.properties"))
    assert "ikey" not in text and "apikey" not in text
    curls = [line for line in text.splitlines() if "curl" in line and "predictions" in line]
    assert curls and all('Bearer $(.venv/bin/python -m serving keys --show inference)"' in c for c in curls)
    assert "/ready" in text  # the key-less health URL is named too
