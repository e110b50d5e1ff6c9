"""One real TorchServe on the KServe configuration: the storage `make kserve-storage` lays out,
started the way KServe's runtime starts TorchServe."""
from __future__ import annotations

import shutil

import pytest
import requests

from deploy.kserve_storage import build_storage
from serving import server as serving_server
from serving.archive import MODEL_NAME, build_archive
from serving.polling import wait_for


class KServeLikeServer(serving_server.TorchServe):
    """TorchServe as KServe's runtime runs it: no tokens, so readiness is polled without keys,
    and TS_SERVICE_ENVELOPE in the environment, as KServe's TorchServe ServingRuntime sets it."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "TS_SERVICE_ENVELOPE": "kserve"}

    def wait_ready(self, model: str | None = MODEL_NAME, timeout: float = 180) -> None:
        def ready() -> bool:
            described = requests.get(f"{self.endpoints.management}/models/{model}", timeout=5)
            return described.ok and any(w["status"] == "READY" for w in described.json()[0]["workers"])

        try:
            wait_for(ready, timeout, f"{model} READY", interval_s=0.5,
                     not_yet=(requests.RequestException, ValueError, KeyError, IndexError),
                     gone=lambda: None if self.pid() else "TorchServe exited")
        except (TimeoutError, RuntimeError) as err:
            raise serving_server.ServerError("TorchServe on the KServe config was not ready; "
                                             f"see {self.workdir / 'logs'}") from err


@pytest.mark.skipif(shutil.which("java") is None, reason="TorchServe needs Java 17+")
def test_kserve_config_serves_the_v1_protocol(tiny_artifacts, tmp_path):
    """The generated storage, started the way KServe's runtime starts TorchServe (its config,
    the v1 envelope), on loopback ports: the snapshot loads the archive by its version and
    /v1/models/news_cnn:predict and :explain answer {"instances": [...]} without a token."""
    out = tmp_path / "storage"
    config = build_storage(build_archive(tiny_artifacts, tmp_path / "build", version="4.2"), out)
    ports = serving_server.free_ports(6)
    local = serving_server.write_properties(
        tmp_path / "config.properties", config,
        **serving_server.Endpoints.on_ports(*ports[:4]).as_properties(),
        grpc_inference_port=ports[4], grpc_management_port=ports[5],
        model_store=out / "model-store", metrics_config=out / "config" / "metrics.yaml",
        service_envelope="kserve")  # what the runtime's TS_SERVICE_ENVELOPE sets for v1
    server = KServeLikeServer(tmp_path, local)
    try:
        server.start(MODEL_NAME)
        described = requests.get(f"{server.endpoints.management}/models/{MODEL_NAME}", timeout=10).json()[0]
        assert described["modelVersion"] == "4.2"
        assert described["batchSize"] == 1
        response = requests.post(
            f"{server.endpoints.inference}/v1/models/{MODEL_NAME}:predict", timeout=60,
            json={"instances": [{"data": {"text": "The final tennis tournament starts next week"}},
                                {"data": {"texts": ["Oil prices rise", "Stocks fall"]}}]})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == 2 and "label" in predictions[0] and len(predictions[1]) == 2
        explained = requests.post(
            f"{server.endpoints.inference}/v1/models/{MODEL_NAME}:explain", timeout=60,
            json={"instances": [{"data": {"text": "The final tennis tournament starts next week"}}]})
        assert explained.status_code == 200, explained.text
        (explanation,) = explained.json()["explanations"]
        assert explanation["label"] == predictions[0]["label"] and "tennis" in explanation["tokens"]
    finally:
        server.stop()
