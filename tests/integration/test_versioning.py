"""Two versions of news_cnn on one real TorchServe: register 2.0 next to 1.0, make 2.0 the
default, roll back to 1.0, all through the management API.

Registering models over the API is off in the project's config.properties (a secure default);
this test's own config turns it on (enable_model_api=true) for its private server only.
"""
from __future__ import annotations

import shutil

import pytest
import requests

from deploy.kserve_storage import read_manifest
from serving import archive
from serving import server as serving_server
from serving.server import MODEL_NAME, TorchServe
from tests.helpers.tiny_artifacts import write_tiny_artifacts

HEADLINE = "The final tennis tournament starts next week"
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="TorchServe needs Java 17+")


@pytest.fixture(scope="module")
def model_store(tmp_path_factory):
    """news_cnn 1.0 and 2.0 (different weights, so their answers differ) built as
    `make archive VERSION=...` builds them, into one store."""
    root = tmp_path_factory.mktemp("versions")
    store = root / "model_store"
    for version, seed in (("1.0", 1), ("2.0", 2)):
        artifacts = write_tiny_artifacts(root / f"artifacts_{version}", seed=seed)
        assert archive.main(["--artifacts", str(artifacts), "--export-path", str(store),
                             "--version", version, "--versioned"]) == 0
    versions = {mar.name: read_manifest(mar)["model"]["modelVersion"] for mar in store.glob("*.mar")}
    assert versions == {f"{MODEL_NAME}_v1.0.mar": "1.0", f"{MODEL_NAME}_v2.0.mar": "2.0"}
    return store


@pytest.fixture(scope="module")
def server(model_store, tmp_path_factory):
    """TorchServe serving news_cnn 1.0 at start, with the register API on; always stopped."""
    workdir = tmp_path_factory.mktemp("versioning_server")
    grpc_inference, grpc_management = serving_server.free_ports(2)  # 7070/7071 may be taken
    config = serving_server.config_on_free_ports(workdir, model_store, workers=1, enable_model_api="true",
                                                 load_models=f"{MODEL_NAME}_v1.0.mar",
                                                 grpc_inference_port=grpc_inference,
                                                 grpc_management_port=grpc_management)
    ts = TorchServe(workdir, config)
    try:
        ts.start(MODEL_NAME)
        yield ts
    finally:
        ts.stop()


def management(server: TorchServe, method: str, path: str, **params) -> requests.Response:
    """One management API call with the management key."""
    return requests.request(method, f"{server.endpoints.management}{path}", params=params or None,
                            headers=server.keys().headers("management"), timeout=120)


def predict(server: TorchServe, version: str | None = None) -> dict:
    """The answer of /predictions/news_cnn[/version] for HEADLINE."""
    url = f"{server.endpoints.inference}/predictions/{MODEL_NAME}" + (f"/{version}" if version else "")
    response = requests.post(url, json={"text": HEADLINE}, headers=server.keys().headers("inference"),
                             timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def default_version(server: TorchServe) -> str:
    """The version GET /models/news_cnn describes: the default one."""
    response = management(server, "GET", f"/models/{MODEL_NAME}")
    assert response.status_code == 200, response.text
    return response.json()[0]["modelVersion"]


def test_register_set_default_and_roll_back(server):
    assert default_version(server) == "1.0"
    v1 = predict(server, "1.0")

    registered = management(server, "POST", "/models", url=f"{MODEL_NAME}_v2.0.mar",
                            synchronous="true")
    assert registered.status_code == 200, registered.text
    versions = management(server, "GET", f"/models/{MODEL_NAME}/all").json()
    assert sorted(v["modelVersion"] for v in versions) == ["1.0", "2.0"]
    v2 = predict(server, "2.0")
    assert v2["probabilities"] != v1["probabilities"]  # two different models really answer
    # Registering a version does not make it the default.
    assert default_version(server) == "1.0" and predict(server) == v1

    switched = management(server, "PUT", f"/models/{MODEL_NAME}/2.0/set-default")
    assert switched.status_code == 200, switched.text
    assert default_version(server) == "2.0"
    assert predict(server) == v2

    rolled_back = management(server, "PUT", f"/models/{MODEL_NAME}/1.0/set-default")
    assert rolled_back.status_code == 200, rolled_back.text
    assert default_version(server) == "1.0"
    assert predict(server) == v1

    # The rolled-back version can then be retired; 1.0 keeps serving.
    removed = management(server, "DELETE", f"/models/{MODEL_NAME}/2.0")
    assert removed.status_code == 200, removed.text
    remaining = management(server, "GET", f"/models/{MODEL_NAME}/all").json()
    assert [v["modelVersion"] for v in remaining] == ["1.0"]
    assert predict(server) == v1


def test_unknown_version_is_a_clear_404(server):
    response = management(server, "PUT", f"/models/{MODEL_NAME}/9.9/set-default")
    assert response.status_code == 404
    assert "9.9" in response.json()["message"]
