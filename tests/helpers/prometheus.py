"""A real Prometheus (Debian's package) for the integration tests: the shipped prometheus.yml
pointed at one test TorchServe's metrics port, on a free loopback port, with its data in a
temporary directory; stopped on exit."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests
import yaml

from serving import monitoring
from serving.server import free_port


def have_prometheus() -> bool:
    return shutil.which("prometheus") is not None


@contextlib.contextmanager
def running_prometheus(metrics_url: str, workdir: Path, scrape_interval: str = "1s",
                       timeout: float = 60) -> Iterator[str]:
    """Prometheus scraping `metrics_url` every `scrape_interval`; yields its base URL once ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    settings = monitoring.prometheus_config_for(metrics_url, scrape_interval=scrape_interval)
    config.write_text(yaml.safe_dump(settings))
    listen = f"127.0.0.1:{free_port()}"
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(monitoring.prometheus_command(config, workdir / "data", listen),
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{listen}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(url: str, promql: str) -> list[dict]:
    """The instant vector `promql` evaluates to now (Prometheus' HTTP API)."""
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(url: str, promql: str, check, timeout: float = 60) -> list[dict]:
    """Query `promql` until `check(result)` is true (while Prometheus starts, too); the last
    result either way."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(url, promql)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            result = None
        if result is not None and (check(result) or time.monotonic() > deadline):
            return result
        time.sleep(0.5)
