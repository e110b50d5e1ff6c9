"""The reliability suite (bench/soak.py) at small sizes, against a real TorchServe serving an
archive of the tiny fixture artifacts with the project's config.properties and model-config.

`make soak` runs the same cases at full size (20,000 requests, ...) and writes bench/soak.json.
Each case here is bounded in count and time; the module takes about a minute.
"""
from __future__ import annotations

import json
import shutil

import pytest

from bench import archives, headlines, server, soak
from bench.badinput import edge_good_requests
from serving.archive import build_archive
from serving.properties import DEFAULT_CONFIG, read_properties
from serving.scaling import ScaleError

pytestmark = pytest.mark.integration

SIZES = soak.SoakSizes.quick()


@pytest.fixture(scope="module")
def served(tiny_artifacts, tmp_path_factory):
    """(TorchServe, archive model-config) for the project's archive settings on the tiny model."""
    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java 17+")
    root = tmp_path_factory.mktemp("soak")
    mar = build_archive(tiny_artifacts, root / "store")
    config = archives.read_model_config(mar)
    ts = server.start(root / "server", root / "store", {soak.MODEL_NAME: mar.name},
                      int(config.get("minWorkers", 1)))
    try:
        yield ts, config
    finally:
        ts.stop()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return list(headlines.SAMPLE)


@pytest.fixture(scope="module")
def expect(tiny_artifacts, texts) -> soak.Expectations:
    return soak.Expectations(tiny_artifacts, texts + [t for _, t in edge_good_requests()])


def _report(name: str, result: dict) -> None:
    print(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'problems'})[:1500]}")


def test_sustained_load_all_right_memory_flat(served, texts, expect):
    ts, _ = served
    result = soak.sustained(ts, texts, expect, SIZES)
    _report("sustained", result)
    assert result["requests"] == SIZES.sustained_requests
    assert result["failed"] == 0, result["statuses"]
    assert result["misdelivered"] == 0 and result["wrong"] == 0
    assert result["same_worker_pids"]
    assert result["memory_growth"] < soak.MEMORY_GROWTH_LIMIT


def test_worker_killed_during_load_is_replaced(served, texts, expect):
    ts, config = served
    workers = int(config.get("minWorkers", 1))
    result = soak.crash(ts, texts, expect, SIZES, workers)
    _report("crash", result)
    assert result["misdelivered"] == 0 and result["wrong"] == 0
    assert result["healthy_after"] and result["workers_after"] == workers
    assert result["killed_pid"] not in server.worker_pids(ts, soak.MODEL_NAME)
    # A plain client loses only requests in flight on the killed worker (one batch at most),
    # all while it is replaced; the retrying client (NewsClient's back-off) loses none.
    assert result["plain_lost"] <= int(config.get("batchSize", 1)), result["failure_errors"]
    assert result["plain_lost"] == result["plain_failed_during_recovery"]
    assert result["retrying_lost"] == 0 and result["failed"] == 0, result["retrying_statuses"]


def test_scaling_under_load_loses_nothing(served, texts, expect):
    ts, config = served
    try:
        result = soak.scaling(ts, texts, expect, SIZES, int(config.get("minWorkers", 1)))
    except ScaleError as err:
        pytest.fail(f"scaling failed: {err}\nTorchServe's last warnings:\n" + "\n".join(ts.log_warnings()))
    _report("scaling", result)
    assert [s["ready_after"] for s in result["steps"]] == [4, 1]
    # The client retries a failed try (as NewsClient does): it ends with every answer, each
    # its own request's (by correlation id) and equal to the in-process model's.
    assert result["failed"] == 0, result["failure_errors"]
    assert result["misdelivered"] == 0 and result["wrong"] == 0, result.get("wrong_examples")
    # Every try TorchServe failed has the signature of its scale-down (pytorch/serve#1101):
    # the stopped worker's batch failed with "Worker died.", a job it had taken dropped
    # (never answered), or jobs it had just answered put back in the queue (answered twice).
    assert result["failed_tries"] == (result["worker_died"] + result["lost_unanswered"]
                                      + result["answered_twice"]), result["failure_errors"]


def test_bad_input_barrage(served, texts, expect):
    ts, config = served
    handler = config.get("handler") or {}
    max_request_size = int(read_properties(DEFAULT_CONFIG).get("max_request_size", 6553500))
    result = soak.barrage(ts, texts, expect, SIZES, max_request_size,
                          int(handler.get("max_chars", 1000)), int(handler.get("max_texts", 64)))
    _report("barrage", result)
    assert result["bad"] >= 200
    assert result["5xx"] == 0 and result["no_answer"] == 0
    assert result["worker_pids_unchanged"] and result["healthy_after"]
    assert result["good_right"] == result["good"]
    assert result["problems"] == []


def test_auth_and_loopback(served):
    ts, _ = served
    result = soak.auth(ts)
    _report("auth", result)
    for case in result["refused"][:-1]:
        assert case["status"] == 400 and case["invalid_key"], case
    assert 400 <= result["refused"][-1]["status"] < 500
    for case in result["model_api"]:
        assert 400 <= case["status"] < 500, case
    assert result["listening"] and all(s["ip"] in soak.LOOPBACK for s in result["listening"]), \
        result["listening"]
    assert result["with_keys"] == {"predict": 200, "list_models": 200}


def test_graceful_stop_under_load_loses_no_accepted_request(served, texts, expect):
    """Last in the module: it stops the shared server. Behind a balancer polling readiness,
    neither a plain nor a retrying client loses a request the server accepted."""
    ts, _ = served
    result = soak.stop(ts, texts, expect, SIZES, drain=True)
    _report("stop", result)
    assert result["drain_report"]["quiet"], result["drain_report"]
    assert result["left_rotation_after_s"] < 2 * soak.BALANCER_POLL_S + 1.0
    assert result["plain_lost"] == 0 and result["retrying_lost"] == 0, result["failure_errors"]
    assert result["rerouted"] > 0 and result["wrong"] == result["misdelivered"] == 0
    assert ts.pid() is None
