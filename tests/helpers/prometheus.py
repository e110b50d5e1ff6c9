"""A real Prometheus (Debian's package) for the integration tests: the shipped prometheus.yml
pointed at one test TorchServe's metrics port, on a free loopback port, with its data in a
temporary directory; stopped on exit."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import requests
import yaml

from serving import monitoring
from serving.polling import wait_for
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
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).status_code == 200, timeout,
                 "prometheus to be ready", interval_s=0.2, not_yet=(requests.RequestException,),
                 gone=lambda: process.poll() is not None and
                 f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
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


def query_until(url: str, promql: str, check, timeout: float = 60) -> list[dict]:
    """Query `promql` until `check(result)` is true (while Prometheus starts, too); the last
    result either way, for the caller's assert to show."""
    last: list[list[dict]] = []

    def checked() -> bool:
        last[:] = [query(url, promql)]
        return check(last[0])

    with contextlib.suppress(TimeoutError):
        wait_for(checked, timeout, promql, interval_s=0.5, not_yet=(requests.ConnectionError,))
    return last[0] if last else query(url, promql)
