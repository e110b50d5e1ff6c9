"""Worker memory stays bounded under the largest requests the handler accepts (soak case).

The largest accepted request is max_texts (64) headlines of max_chars (1,000) characters,
each character one that accent folding turns into a word of its own ("¼" -> "1⁄4"). Each
case starts a fresh TorchServe with the project's settings (2 workers, the archive's batch
settings) on free loopback ports, sends that request from many clients at once for a while,
and samples the resident memory summed over the workers. It passes when every request got
200 (no 5xx, no dropped connection), no worker was restarted, and the peak growth over the
idle workers stays within the case's limit.

    make model_store/news_cnn.mar DATA=../shared/data/ag_news/news.csv
    pytest -m soak tests/reliability/test_bounded_memory.py -s

NEWS_SOAK_MAR names another archive (default model_store/news_cnn.mar), NEWS_SOAK_SECONDS
the load time per case (default 20). The figures are printed as one JSON line per case.
The load stops early, and the case fails, once growth passes SAFETY_MIB: the machine is
shared.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.load import CheckedLoad
from bench.server import worker_pids, worker_rss
from serving.mar import read_model_config
from serving.properties import MODEL_NAME, REPO_ROOT
from serving.server import TorchServe, test_config

pytestmark = [pytest.mark.soak, pytest.mark.integration]

MAR = Path(os.environ.get("NEWS_SOAK_MAR") or REPO_ROOT / "model_store" / "news_cnn.mar")
SECONDS = float(os.environ.get("NEWS_SOAK_SECONDS") or 20)
WORKERS = 2  # config.properties' default_workers_per_model
# (path, concurrent clients, growth limit in MiB over the idle workers, summed).
CASES = [("predictions", 32, 600), ("explanations", 8, 1024)]
SAFETY_MIB = 4096
SAMPLE_S = 0.2
EXPANDING = "¼"  # NFKD: "1⁄4", two words per character, joined with the next one's


def largest_request(mar: Path) -> bytes:
    """The JSON body of the largest request the archive's handler settings accept."""
    settings = read_model_config(mar).get("handler") or {}
    texts = [EXPANDING * int(settings.get("max_chars", 1000))] * int(settings.get("max_texts", 64))
    return json.dumps({"texts": texts}).encode()


class RssSampler(threading.Thread):
    """Samples the workers' resident memory (MiB, summed) until stopped; calls `over` once
    the growth over `base` passes SAFETY_MIB."""

    def __init__(self, server: TorchServe, base: float, over) -> None:
        super().__init__(daemon=True)
        self.server, self.base, self.over = server, base, over
        self.peak = base
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            self.peak = max(self.peak, sum(worker_rss(self.server).values()))
            if self.peak - self.base > SAFETY_MIB:
                self.over()


@pytest.fixture
def server(tmp_path):
    """A fresh TorchServe serving MAR with 2 workers, stopped after the case."""
    if not MAR.is_file():
        pytest.skip(f"{MAR} does not exist: build it with "
                    f"`make model_store/news_cnn.mar DATA=path/to/news.csv` or set NEWS_SOAK_MAR")
    store = tmp_path / "model_store"
    store.mkdir()
    shutil.copyfile(MAR, store / "news_cnn.mar")
    with TorchServe(tmp_path, test_config(tmp_path, store, workers=WORKERS)) as ts:
        ts.start(timeout=300)
        yield ts


@pytest.mark.parametrize("path, concurrency, limit_mib", CASES, ids=[c[0] for c in CASES])
def test_the_largest_requests_keep_worker_memory_bounded(server, path, concurrency, limit_mib, capsys):
    url = f"{server.endpoints.inference}/{path}/{MODEL_NAME}"
    load = CheckedLoad(url, headers=lambda: server.auth("inference"), timeout_s=90)
    # Warm up both workers with ordinary headlines, so the base is the workers at rest.
    warm = load.run([(json.dumps({"text": "Oil prices rise as stocks fall"}).encode(), "application/json")],
                    concurrency=WORKERS, total=8)
    assert {o.status for o in warm} == {200}
    pids = worker_pids(server, MODEL_NAME)
    assert len(pids) == WORKERS
    base = sum(worker_rss(server).values())
    sampler = RssSampler(server, base, load.stop.set)
    sampler.start()
    started = time.monotonic()
    outcomes = load.run([(largest_request(MAR), "application/json")], concurrency,
                        total=10**6, deadline_s=SECONDS)
    elapsed = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    after = sum(worker_rss(server).values())
    statuses = Counter(o.status for o in outcomes)
    figures = {"case": path, "concurrency": concurrency, "seconds": round(elapsed, 1),
               "requests": len(outcomes), "statuses": {str(k): v for k, v in sorted(statuses.items())},
               "rss_mib_idle": round(base), "rss_mib_peak": round(sampler.peak),
               "rss_mib_after": round(after), "growth_mib": round(sampler.peak - base),
               "limit_mib": limit_mib, "workers_restarted": worker_pids(server, MODEL_NAME) != pids,
               "mar": str(MAR), "stopped_at_safety_limit": load.stop.is_set()}
    with capsys.disabled():
        print(f"\nbounded memory: {json.dumps(figures)}")
    assert outcomes and set(statuses) == {200}, figures
    assert not figures["workers_restarted"], figures
    assert sampler.peak - base <= limit_mib, figures
    body = largest_request(MAR)
    assert len(outcomes[0].json()) == len(json.loads(body)["texts"])  # one answer per headline
