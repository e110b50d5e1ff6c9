"""A real TorchServe (Java) on free loopback ports in a temporary directory, serving an
archive built from the tiny fixture artifacts; started once for the module, always stopped."""
from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from client.api import NewsClient
from model.predictor import Predictor
from serving import keys as keyfile
from serving.archive import build_archive
from serving.properties import read_properties
from serving.server import TorchServe, config_on_free_ports
from tests.helpers import fake_http
from tests.helpers.torchserve import served_archive

GOOD = "The final tennis tournament starts next week."
HEADLINES = [GOOD, "Oil prices rise as stocks fall", "Rocket reaches space", "Election vote talks",
             "League cup final", "Bank market software", "the of a", "zzz unknown words"]
# One worker to start with, and a batch window wide enough that concurrent requests share
# TorchServe batches (so the burst test exercises batching, not just a queue).
TEST_MODEL_CONFIG = """\
batchSize: 8
maxBatchDelay: 50
minWorkers: 1
maxWorkers: 3
responseTimeout: 30
handler:
  max_chars: 1000
  max_texts: 64
  num_threads: 1
"""


@pytest.fixture(scope="module")
def server(tiny_artifacts, tmp_path_factory):
    with served_archive(tiny_artifacts, tmp_path_factory.mktemp("torchserve"), TEST_MODEL_CONFIG) as ts:
        yield ts


@pytest.fixture(scope="module")
def predictor(tiny_artifacts) -> Predictor:
    return Predictor.from_dir(tiny_artifacts)


def post(server, body=None, json=None, content_type=None, path="predictions", headers=None):
    sent = dict(server.keys().headers("inference") if headers is None else headers)
    if content_type:
        sent["Content-Type"] = content_type
    return requests.post(f"{server.endpoints.inference}/{path}/news_cnn", data=body, json=json,
                         headers=sent, timeout=30)


def worker_pids(server) -> list[int]:
    return sorted(w["pid"] for w in server.describe()["workers"] if w["status"] == "READY")


def test_each_input_form(server, predictor):
    expected = predictor.predict([GOOD, "Oil prices rise as stocks fall"])
    plain = post(server, GOOD.encode(), content_type="text/plain")
    single = post(server, json={"text": GOOD})
    several = post(server, json={"texts": [GOOD, "Oil prices rise as stocks fall"]})
    assert [r.status_code for r in (plain, single, several)] == [200, 200, 200]
    assert plain.json() == single.json() == expected[0]
    assert several.json() == expected
    assert plain.headers["content-type"].startswith("application/json")


def test_concurrent_burst_answers_equal_single_requests(server):
    singles = {text: post(server, json={"text": text}).json() for text in HEADLINES}
    jobs = [HEADLINES[i % len(HEADLINES)] for i in range(64)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda text: post(server, json={"text": text}), jobs))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json() for a in answers] == [singles[text] for text in jobs]


BAD = [
    ("empty", b"", "text/plain", 400),
    ("whitespace", b"   \n", "text/plain", 400),
    ("invalid utf-8", b"caf\xe9 \xff", "text/plain", 400),
    ("malformed json", b'{"text": ', "application/json", 400),
    ("json without text", b'{"title": "x"}', "application/json", 400),
    ("texts not a list", b'{"texts": "x"}', "application/json", 400),
    ("texts not strings", b'{"texts": [1, 2]}', "application/json", 400),
    ("texts empty", b'{"texts": []}', "application/json", 400),
    ("headline too long", b"word " * 300, "text/plain", 413),
    ("too many texts", b'{"texts": [' + b",".join([b'"x"'] * 65) + b"]}", "application/json", 413),
]


def test_every_bad_input_gets_its_4xx_and_the_server_stays_healthy(server):
    before = worker_pids(server)
    for path in ("predictions", "explanations"):
        for name, body, content_type, status in BAD:
            response = post(server, body, content_type=content_type, path=path)
            assert response.status_code == status, (path, name)
            # {"error", "message"}, and "index" when one headline of `texts` is the problem.
            assert set(response.json()) - {"index"} == {"error", "message"}, (path, name)
    limit = int(read_properties(server.config)["max_request_size"])
    oversized = post(server, b"x" * (limit + 1), content_type="text/plain")
    assert oversized.status_code == 413 and not oversized.content  # TorchServe's own refusal
    assert server.ping()
    assert worker_pids(server) == before  # same workers: none died or restarted
    assert post(server, json={"text": GOOD}).status_code == 200


def test_mixed_good_and_bad_requests_at_once(server, predictor):
    bodies = [(GOOD.encode(), "text/plain"), (b"", "text/plain"), (b"{", "application/json")] * 6
    with ThreadPoolExecutor(max_workers=9) as pool:
        answers = list(pool.map(lambda b: post(server, b[0], content_type=b[1]), bodies))
    assert [a.status_code for a in answers] == [200, 400, 400] * 6
    assert all(a.json() == predictor.predict([GOOD])[0] for a in answers[::3])


def test_explanations_are_decided_per_request(server):
    paths = ["predictions", "explanations"] * 8
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda p: post(server, json={"text": GOOD}, path=p), paths))
    assert all(a.status_code == 200 for a in answers)
    for path, answer in zip(paths, answers, strict=True):
        body = answer.json()
        assert ("token_scores" in body) == (path == "explanations")
        if path == "explanations":
            assert body["tokens"] == ["final", "tennis", "tournament", "starts", "week"]
            assert len(body["token_scores"]) == 5 and set(body["ngrams"]) == {"1", "2", "3"}
    several = post(server, json={"texts": [GOOD, "Oil prices"]}, path="explanations")
    assert several.status_code == 200 and len(several.json()) == 2
    assert post(server, b"", content_type="text/plain", path="explanations").status_code == 400


def test_headlines_without_a_known_word_abstain_in_place_with_200(server, predictor):
    texts = [GOOD, "the of a", "!!! ???", "zzz qqq", "Oil prices rise"]
    predicted = post(server, json={"texts": texts})
    explained = post(server, json={"texts": texts}, path="explanations")
    assert predicted.status_code == explained.status_code == 200
    answers = predicted.json()
    assert answers == predictor.predict(texts)
    assert [a["abstained"] for a in answers] == [None, "no_known_words", "no_known_words",
                                                 "no_known_words", None]
    assert all(a["label"] is None and a["probabilities"] is None for a in answers[1:4])
    assert answers[0]["label"] and answers[4]["label"]
    explanations = explained.json()
    assert [e["label"] for e in explanations] == [a["label"] for a in answers]
    for explanation in explanations[1:4]:
        assert explanation["abstained"] == "no_known_words" and explanation["explained_class"] is None
        assert "ngrams" not in explanation and "token_scores" not in explanation
    assert explanations[3]["tokens"] == ["zzz", "qqq"]
    assert len(explanations[4]["token_scores"]) == 3 and "opposing_ngrams" in explanations[4]


def test_the_correlation_id_comes_back_in_the_answers_headers(server):
    keys = server.keys().headers("inference")
    for path, body in (("predictions", {"text": GOOD}), ("explanations", {"text": GOOD}),
                       ("predictions", {"text": ""})):
        answer = post(server, json=body, path=path, headers={**keys, "X-Correlation-Id": f"{path}-7"})
        assert answer.headers.get("X-Correlation-Id") == f"{path}-7", (path, body, answer.status_code)
    refused = post(server, json={"text": GOOD}, headers={**keys, "X-Correlation-Id": "a b"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_correlation_id"
    assert "X-Correlation-Id" not in refused.headers


def test_scale_workers_and_describe(server):
    try:
        server.scale("news_cnn", 3)
        assert server.ready_workers() == 3
        described = server.describe(customized=True)
        assert described["modelVersion"] == "0.1.0" and described["batchSize"] == 8
        assert described["customizedMetadata"]["labels"] == ["Business", "Sci/Tech", "Sports", "World"]
    finally:
        server.scale("news_cnn", 1)
    assert server.ready_workers() == 1
    assert post(server, json={"text": GOOD}).status_code == 200


def test_a_client_without_the_management_api_reads_the_metadata_from_the_handler(server, tmp_path):
    # Deployments keep management on loopback: `news-cnn predict --file` still learns
    # max_texts and the labels, from a describe request on the inference API.
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    client = NewsClient(server.endpoints.inference, management_url=closed, key_file=server.key_file,
                        timeout=10, retries=0)
    assert client.metadata() == server.describe(customized=True)["customizedMetadata"]


def test_metrics_endpoint_shows_the_handler_metrics(server):
    post(server, json={"texts": [GOOD, "zzz"]})
    post(server, b"", content_type="text/plain")
    text = requests.get(f"{server.endpoints.metrics}/metrics", timeout=10).text
    for name in ("NewsPreprocessTime", "NewsUnknownTokenPercent", "NewsBatchRequests",
                 "NewsBatchHeadlines", "NewsBadRequests", "NewsAbstentions", "HandlerTime"):
        assert any(line.startswith(name + "{") and 'ModelName="news_cnn"' in line
                   for line in text.splitlines()), name


def test_requests_without_or_with_a_wrong_key_are_refused(server):
    inference, management = server.endpoints.inference, server.endpoints.management
    wrong = {"Authorization": "Bearer not-the-key"}
    for headers in ({}, wrong):
        refused = post(server, json={"text": GOOD}, headers=headers)
        assert refused.status_code == 400 and refused.json()["type"] == "InvalidKeyException"
        assert requests.get(f"{inference}/ping", headers=headers, timeout=10).status_code == 400
        assert requests.get(f"{management}/models", headers=headers, timeout=10).status_code == 400
    # The inference key does not open the management API, and registering models is off.
    assert requests.get(f"{management}/models", headers=server.keys().headers("inference"),
                        timeout=10).status_code == 400
    register = requests.post(f"{management}/models", params={"url": "news_cnn.mar"},
                             headers=server.keys().headers("management"), timeout=10)
    assert register.status_code >= 400
    assert oct(os.stat(server.key_file).st_mode & 0o777) == "0o600"


class _CountingServer(fake_http.JSONHandler):
    """Counts every request: a workflow fetched from here would show."""

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits += 1
        self.send_json(200, {})


def test_workflows_are_refused_and_fetch_nothing(server):
    """TorchServe 0.12 does not gate POST /workflows by enable_model_api: it downloads the
    archive through allowed_urls and registers the workflow's models (their handler code runs).
    With the management key, every form of URL is refused and nothing is fetched; without it
    the key check refuses first."""
    management, key = server.endpoints.management, server.keys().headers("management")
    store = read_properties(server.config)["model_store"]
    (server.workdir / "news.war").write_bytes(b"not a workflow archive")
    with fake_http.serve(_CountingServer, hits=0) as (url, fetched):
        for source in (f"{url}/news.war", f"file://{server.workdir}/news.war", f"file://{store}/news_cnn.mar",
                       "news.war"):
            answer = requests.post(f"{management}/workflows", params={"url": source, "workflow_name": "w"},
                                   headers=key, timeout=30)
            assert 400 <= answer.status_code < 500, (source, answer.status_code, answer.text)
        anonymous = requests.post(f"{management}/workflows", params={"url": f"{url}/news.war"}, timeout=30)
        assert anonymous.status_code == 400 and anonymous.json()["type"] == "InvalidKeyException"
        assert fetched.hits == 0
    listed = requests.get(f"{management}/workflows", headers=key, timeout=30)
    assert listed.status_code == 200 and listed.json()["workflows"] == []
    assert [m["modelName"] for m in requests.get(f"{management}/models", headers=key,
                                                 timeout=30).json()["models"]] == ["news_cnn"]


def test_renewed_keys_replace_the_old_ones(server):
    """How clients outlive key expiry: the API key renews a key, key_file.json is rewritten."""
    old = server.keys()
    new = keyfile.renew("inference", server.key_file, server.endpoints.management)
    assert new.inference != old.inference and new.api == old.api
    assert post(server, json={"text": GOOD}, headers=old.headers("inference")).status_code == 400
    assert post(server, json={"text": GOOD}, headers=new.headers("inference")).status_code == 200


def test_rest_predictions_equal_the_in_process_model_on_the_test_split(trained_artifacts,
                                                                         tmp_path_factory):
    """The model trained on $DATA, over REST vs in process, on its whole test split."""
    import pandas as pd

    artifacts_dir = trained_artifacts
    titles = pd.read_csv(artifacts_dir / "test.csv")["title"].astype(str).tolist()
    workdir = tmp_path_factory.mktemp("torchserve_trained")
    build_archive(artifacts_dir, workdir / "model_store")
    expected = Predictor.from_dir(artifacts_dir).predict(titles)
    with TorchServe(workdir, config_on_free_ports(workdir, workdir / "model_store")).start(timeout=180) as ts:
        answers = []
        for start in range(0, len(titles), 64):
            response = post(ts, json={"texts": titles[start:start + 64]})
            assert response.status_code == 200, response.text
            answers.extend(response.json())
        explained = post(ts, json={"text": GOOD}, path="explanations").json()
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    assert answers == expected
    # The seed's example: a Sports headline explained by its tennis n-grams.
    assert explained["label"] == "Sports"
    picked = " ".join(top["ngram"] for top in explained["ngrams"].values() if top)
    assert "tennis" in picked or "tournament" in picked, explained["ngrams"]
    logit_change = sum(explained["token_scores"])
    assert abs(explained["delta"]) < 0.1 * max(abs(logit_change), 1.0)
