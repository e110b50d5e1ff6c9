"""Keys are required on inference and management, the model-register API is refused even
with the management key, and every socket the server listens on is on loopback."""
from __future__ import annotations

import json

import psutil
import pytest
import requests

from bench import served_models
from serving.properties import MODEL_NAME
from serving.server import TorchServe

pytestmark = [pytest.mark.integration, pytest.mark.soak]

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def listening_sockets(ts: TorchServe) -> list[dict]:
    """Every TCP socket the frontend and its workers listen on."""
    pid = ts.pid()
    procs = [psutil.Process(pid)] + served_models.worker_processes(ts) if pid else []
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        out += [{"pid": p.pid, "ip": c.laddr.ip, "port": c.laddr.port}
                for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def test_keys_required_model_api_refused_loopback_only(served, record):
    keys = served.keys()
    inference, management = served.endpoints.inference, served.endpoints.management
    body = json.dumps({"text": "Stocks rally"})
    cases = [
        ("predict without key", "POST", f"{inference}/predictions/{MODEL_NAME}", {}),
        ("predict with wrong key", "POST", f"{inference}/predictions/{MODEL_NAME}",
         {"Authorization": "Bearer wrong"}),
        ("predict with management key", "POST", f"{inference}/predictions/{MODEL_NAME}",
         keys.headers("management")),
        ("explain without key", "POST", f"{inference}/explanations/{MODEL_NAME}", {}),
        ("ping without key", "GET", f"{inference}/ping", {}),
        ("list models without key", "GET", f"{management}/models", {}),
        ("list models with wrong key", "GET", f"{management}/models", {"Authorization": "Bearer wrong"}),
        ("list models with inference key", "GET", f"{management}/models", keys.headers("inference")),
        ("scale without key", "PUT", f"{management}/models/{MODEL_NAME}?min_worker=3", {}),
    ]
    refused = []
    for name, method, url, headers in cases:
        r = requests.request(method, url, data=body if method == "POST" else None,
                             headers={"Content-Type": "application/json", **headers}, timeout=30)
        refused.append({"case": name, "status": r.status_code,
                        "invalid_key": "InvalidKeyException" in r.text, "body": r.text[:160]})
    # Renewing a key needs the API key, which nobody here holds.
    r = requests.post(f"{management}/token?type=inference", data=body, timeout=30,
                      headers={"Content-Type": "application/json"})
    token = {"case": "new token without API key", "status": r.status_code, "body": r.text[:160]}
    # With the right management key, registering and unregistering models stay refused.
    model_api = []
    for name, method, url in (
            ("register a model", "POST", f"{management}/models?url={MODEL_NAME}.mar&model_name=other"),
            ("register from a URL", "POST", f"{management}/models?url=http://127.0.0.1:1/x.mar"),
            ("unregister the model", "DELETE", f"{management}/models/{MODEL_NAME}")):
        r = requests.request(method, url, headers=keys.headers("management"), timeout=30)
        model_api.append({"case": name, "status": r.status_code, "body": r.text[:160]})
    listening = listening_sockets(served)
    # With the right keys everything still works (the refusals are not a broken server).
    ok_predict = requests.post(f"{inference}/predictions/{MODEL_NAME}", data=body, timeout=30,
                               headers={"Content-Type": "application/json", **keys.headers("inference")})
    ok_models = requests.get(f"{management}/models", headers=keys.headers("management"), timeout=30)
    figures = {"refused": refused + [token], "model_api": model_api, "listening": listening,
               "with_keys": {"predict": ok_predict.status_code, "list_models": ok_models.status_code},
               "model_still_registered": served.ready_workers(MODEL_NAME) > 0}
    record("auth", figures)
    for case in refused:
        assert case["status"] == 400 and case["invalid_key"], case
    assert 400 <= token["status"] < 500, token
    for case in model_api:
        assert 400 <= case["status"] < 500, case
    assert listening and all(s["ip"] in LOOPBACK for s in listening), listening
    assert figures["with_keys"] == {"predict": 200, "list_models": 200}
    assert figures["model_still_registered"]
