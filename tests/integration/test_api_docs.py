"""docs/api.md keeps its word on a real TorchServe: each documented refusal gets its status and
code, and what it says about methods, the largest request and TorchServe's own refusals
holds. The Makefile's client targets pass a headline to Python as it was typed."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import requests

from model.predictor import Predictor
from serving.properties import REPO_ROOT, read_properties
from tests.helpers.api_docs import EXAMPLES, JSON, REFUSALS, TEXT
from tests.helpers.torchserve import served_archive


@pytest.fixture(scope="module")
def server(tiny_artifacts, tmp_path_factory):
    """The project's config.properties and model-config.yaml on free ports, tiny artifacts."""
    with served_archive(tiny_artifacts, tmp_path_factory.mktemp("api_docs")) as ts:
        yield ts


def send(server, body: bytes | None, content_type: str | None = TEXT, headers: dict | None = None,
         method: str = "POST", path: str = "predictions/news_cnn") -> requests.Response:
    sent = {**server.keys().headers("inference"), **(headers or {})}
    if content_type:
        sent["Content-Type"] = content_type
    return requests.request(method, f"{server.endpoints.inference}/{path}", data=body, headers=sent,
                            timeout=60)


@pytest.mark.parametrize("code", sorted(EXAMPLES))
def test_the_server_sends_what_the_table_says(server, code):
    body, content_type, headers = EXAMPLES[code]
    for path in ("predictions/news_cnn", "explanations/news_cnn"):
        response = send(server, body, content_type, headers, path=path)
        assert (response.status_code, response.json()["error"]) == (REFUSALS[code], code), path
        assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_method_without_a_body_gets_a_json_400_saying_to_post(server, method):
    response = send(server, None, None, method=method)
    assert response.status_code == 400
    assert response.json()["error"] == "empty_body" and "POST" in response.json()["message"]


def test_a_bad_headline_inside_texts_is_named_by_its_index(server):
    response = send(server, json.dumps({"texts": ["Oil rises", "Stocks fall", ""]}).encode(), JSON)
    assert response.status_code == 400
    assert response.json()["index"] == 2 and "texts[2]" in response.json()["message"]


@pytest.mark.parametrize("char", ["\u00e9", "\U0001F600"])  # 6 and 12 bytes as JSON \u escapes
def test_the_largest_documented_request_fits_max_request_size(server, tiny_artifacts, char):
    texts = [char * 1000] * 64
    body = json.dumps({"texts": texts}).encode()  # Python's default: ensure_ascii, \u escapes
    assert len(body) > 131072  # larger than the old limit, which refused it
    response = send(server, body, JSON)
    assert response.status_code == 200, response.text[:300]
    assert response.json() == Predictor.from_dir(tiny_artifacts).predict(texts)


def test_torchserves_own_refusals_are_as_documented(server):
    limit = int(read_properties(server.config)["max_request_size"])
    assert limit == 1048576  # "1 MiB" in docs/api.md
    oversized = send(server, b"x" * (limit + 1))
    assert oversized.status_code == 413 and not oversized.content
    bad_key = requests.post(f"{server.endpoints.inference}/predictions/news_cnn", data=b"Oil rises",
                            headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert bad_key.status_code == 400 and bad_key.json()["type"] == "InvalidKeyException"
    unknown = send(server, b"Oil rises", path="predictions/no_such_model")
    assert unknown.status_code == 404 and unknown.json()["type"] == "ModelNotFoundException"


# -- the Makefile ---------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_predict_passes_the_headline_as_typed_and_runs_nothing_in_it(server, tiny_artifacts,
                                                                        tmp_path):
    """The one test that calls make: it tests the Makefile. A quote, `;`, `$(...)` and a
    backtick in TEXT must neither run a command nor change the headline."""
    headline = 'a"; touch pwned; echo "$(shell touch pwned2) `touch pwned3` $$HOME'
    # --old-file: never (re)install from a test, even when the venv's stamp is older than
    # pyproject.toml; this test runs inside that venv already.
    result = subprocess.run(["make", "--no-print-directory", "--old-file=.venv/.installed", "predict",
                             f"TEXT={headline}", f"SERVER_DIR={server.workdir}"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for directory in (REPO_ROOT, server.workdir, tmp_path):
        assert not list(directory.glob("pwned*")), directory
    printed = json.loads(result.stdout[result.stdout.index("[\n"):])
    assert printed == Predictor.from_dir(tiny_artifacts).predict([headline])
