"""A real Prometheus with the shipped prometheus.yml and rules.yml against a real TorchServe:
known headlines are sent, and the per-label counts, the other behaviour counters and a
recording rule read through Prometheus' HTTP API equal what the server answered. Skipped only
where no prometheus binary exists (Debian: apt-get install prometheus; .ci/run installs it)."""
from __future__ import annotations

from collections import Counter

import pytest
import requests
import yaml

from model.monitoring import Tally
from serving import monitoring
from tests.helpers.prometheus import have_prometheus, query, query_until, running_prometheus
from tests.helpers.tiny_artifacts import TINY_LABELS
from tests.helpers.torchserve import served_archive

pytestmark = pytest.mark.skipif(not have_prometheus(),
                                reason="no prometheus binary (apt-get install prometheus)")

HEADLINES = ["The final tennis tournament starts next week.", "Oil prices and stocks market",
             "President election vote", "Rocket space software talks", "Bank war talks in the league cup",
             "league cup final", "stocks market bank", "zzz qqq"]


@pytest.fixture(scope="module")
def stack(tiny_artifacts, tmp_path_factory):
    """(TorchServe, Prometheus URL), Prometheus scraping the server every second."""
    workdir = tmp_path_factory.mktemp("prometheus")
    with served_archive(tiny_artifacts, workdir / "torchserve") as ts, \
            running_prometheus(ts.endpoints.metrics, workdir / "prometheus") as url:
        yield ts, url


def post(ts, payload, explain: bool = False) -> requests.Response:
    path = "explanations" if explain else "predictions"
    return requests.post(f"{ts.endpoints.inference}/{path}/news_cnn", json=payload,
                         headers=ts.keys().headers("inference"), timeout=60)


def by_label(result: list[dict]) -> dict[str, float]:
    return {r["metric"]["Label"]: float(r["value"][1]) for r in result}


def test_prometheus_counts_what_the_server_answered(stack):
    ts, url = stack
    # The worker created every series at 0: wait for a scrape that has them before sending,
    # so that rate() sees the whole traffic.
    zeros = query_until(url, "sum by (Label) (NewsPredictions)", lambda r: len(r) == len(TINY_LABELS))
    assert by_label(zeros) == dict.fromkeys(TINY_LABELS, 0.0)

    answered: list[dict] = []
    explained = Counter()
    for _ in range(3):
        for text in HEADLINES:
            answer = post(ts, {"text": text})
            assert answer.status_code == 200, answer.text
            answered.append(answer.json())
    batch = post(ts, {"texts": HEADLINES})
    assert batch.status_code == 200
    answered += batch.json()
    explanation = post(ts, {"texts": HEADLINES[:3]}, explain=True)
    assert explanation.status_code == 200
    answered += explanation.json()
    explained.update(a["label"] for a in explanation.json())
    assert post(ts, {"text": ""}).status_code == 400  # refused: not counted
    expected = Tally().add(answered)
    assert expected.abstentions == 4 and len(expected.labels) >= 2  # the traffic is mixed

    counts = query_until(url, "sum by (Label) (NewsPredictions)",
                      lambda r: sum(by_label(r).values()) >= expected.labelled)
    assert by_label(counts) == {label: float(expected.labels.get(label, 0)) for label in TINY_LABELS}
    explanations = by_label(query(url, 'sum by (Label) (NewsPredictions{Endpoint="explanations"})'))
    assert explanations == {label: float(explained.get(label, 0)) for label in TINY_LABELS}
    assert float(query(url, "sum(NewsAbstentions)")[0]["value"][1]) == expected.abstentions
    assert float(query(url, "sum(NewsWords)")[0]["value"][1]) == expected.words
    assert float(query(url, "sum(NewsUnknownWords)")[0]["value"][1]) == expected.unknown_words
    buckets = {r["metric"]["le"]: float(r["value"][1])
               for r in query(url, "sum by (le) (NewsConfidence_bucket)")}
    assert buckets == {le: float(expected.buckets.get(le, 0)) for le in buckets} and "+Inf" in buckets
    workers = len(ts.describe()["workers"])  # model-config.yaml's minWorkers
    assert float(query(url, "sum(NewsWorkerStarts)")[0]["value"][1]) == workers >= 1
    alive = query_until(url, "news:workers:alive", lambda r: bool(r) and float(r[0]["value"][1]) == workers)
    assert float(alive[0]["value"][1]) == workers

    # A recording rule of rules.yml: each label's share of the answers over 5 minutes, once an
    # evaluation after the last scrape has run (it may first see the counts part-way).
    answered_shares = {label: expected.labels.get(label, 0) / expected.labelled for label in TINY_LABELS}
    shares = query_until(url, "news:label_share:ratio_rate5m",
                      lambda r: by_label(r) == pytest.approx(answered_shares, rel=1e-6))
    assert by_label(shares) == pytest.approx(answered_shares, rel=1e-6)


def test_the_shipped_rules_load_healthy(stack):
    _, url = stack
    shipped = yaml.safe_load(monitoring.RULES.read_text())["groups"]
    # Every rule evaluated at least once (the traffic guard's series exists), then none in error.
    assert query_until(url, "news:headlines:rate1h", bool)
    loaded = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {g["name"]: len(g["rules"]) for g in loaded} == {g["name"]: len(g["rules"]) for g in shipped}
    assert all(rule["health"] == "ok" for group in loaded for rule in group["rules"]), loaded
    up = query(url, 'up{job="news-cnn"}')
    assert [float(r["value"][1]) for r in up] == [1.0]


def test_make_monitor_runs_prometheus_beside_a_server_and_prints_its_address(stack, tmp_path):
    import subprocess
    import sys

    from serving.server import free_port

    ts, _ = stack
    listen = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "serving.monitoring", "serve", "--config", str(ts.config),
               "--workdir", str(tmp_path), "--listen", listen]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=monitoring.REPO_ROOT)
    try:
        printed = process.stdout.readline()
        assert printed.startswith(f"Prometheus at http://{listen} (scraping {ts.endpoints.metrics}/metrics")
        up = query_until(f"http://{listen}", 'up{job="news-cnn"}',
                         lambda r: [x["value"][1] for x in r] == ["1"])
        assert [x["value"][1] for x in up] == ["1"]
    finally:
        process.terminate()
        process.wait(timeout=20)
