"""`make bench-peers`' logic without servers: answer comparison, refusal of a disagreeing
peer, alternation, ratios and targets, the choice of batch settings, and the result files."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

import fake_http
from bench import load, peers, peers_report

ANSWER = {"label": "Sports",
          "probabilities": {"Sports": 0.9, "World": 0.06, "Business": 0.03, "Sci/Tech": 0.01},
          "num_tokens": 3, "unknown_tokens": 0}
EXPLAINED = {**ANSWER, "tokens": ["final", "tennis", "tournament"], "explained_class": "Sports",
             "token_scores": [0.1, 0.7, 0.2]}


def test_the_same_answer_agrees_within_rounding_and_whatever_keys_are_added():
    nudged = dict(ANSWER, probabilities={k: v + 5e-5 for k, v in ANSWER["probabilities"].items()},
                  abstained=None)
    assert peers.disagreement(ANSWER, nudged) is None
    assert peers.disagreement(EXPLAINED, dict(EXPLAINED, token_scores=[0.1005, 0.7, 0.2]), True) is None


def test_abstained_answers_agree_on_their_null_label_whatever_the_explanation_keys():
    abstained = {"label": None, "probabilities": None, "num_tokens": 0, "unknown_tokens": 0,
                 "abstained": "no_known_words"}
    peer = {"label": None, "probabilities": None, "num_tokens": 0, "unknown_tokens": 0}
    assert peers.disagreement(dict(abstained, tokens=[]), peer, explanations=True) is None
    assert "label 'Sports'" in peers.disagreement(abstained, ANSWER)


@pytest.mark.parametrize("got, why", [
    (dict(ANSWER, label="World"), "label 'World'"),
    (dict(ANSWER, probabilities={**ANSWER["probabilities"], "World": 0.0605}), "probabilities differ"),
    (dict(ANSWER, probabilities={"Sports": 1.0}), "probability labels"),
    (None, "not an answer object"),
    ({"code": 500, "message": "Worker died."}, "label None"),
])
def test_a_different_answer_is_named(got, why):
    assert why in peers.disagreement(ANSWER, got)


@pytest.mark.parametrize("change, why", [
    ({"token_scores": [0.1, 0.72, 0.2]}, "token_scores"),
    ({"token_scores": [0.1, 0.7]}, "token_scores"),
    ({"tokens": ["final", "tennis"]}, "tokens"),
    ({"explained_class": "World"}, "explained_class"),
])
def test_a_different_explanation_is_named_and_ignored_for_predictions(change, why):
    assert why in peers.disagreement(EXPLAINED, dict(EXPLAINED, **change), explanations=True)
    assert peers.disagreement(EXPLAINED, dict(EXPLAINED, **change)) is None


class _Peer(BaseHTTPRequestHandler):
    """A peer answering ANSWER for every headline but the one named `wrong_for`."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"]
        body = json.dumps(dict(ANSWER, label="World") if text == self.server.wrong_for else ANSWER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_peer_that_disagrees_on_one_headline_is_refused_naming_it():
    texts = [f"headline {i}" for i in range(30)]
    with fake_http.serve(_Peer, wrong_for="headline 17") as (url, _):
        endpoint = peers.Endpoint("fastapi", url, "/predictions", "/explanations")
        assert peers.check_agreement([ANSWER] * 30, endpoint, texts) == \
            "'headline 17': label 'World' instead of 'Sports'"
    with fake_http.serve(_Peer, wrong_for=None) as (url, _):
        endpoint = peers.Endpoint("fastapi", url, "/predictions", "/explanations")
        assert peers.check_agreement([ANSWER] * 30, endpoint, texts) is None


def _result(rps: float, c: int = 16, p50: float = 1.0, p99: float = 2.0) -> load.LoadResult:
    return load.LoadResult(concurrency=c, requests=int(rps), duration_s=1.0, rps=rps, p50_ms=p50, p90_ms=p50,
                           p99_ms=p99, max_ms=p99, statuses={"200": int(rps)})


def test_rounds_alternate_the_order_and_keep_each_servers_best():
    order = []
    figures = {"a": iter([100.0, 300.0, 200.0]), "b": iter([50.0, 40.0, 60.0])}

    def run(name):
        def call():
            order.append(name)
            return _result(next(figures[name]))
        return call

    best = peers.best_of_rounds({"a": run("a"), "b": run("b")}, rounds=3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert {k: v.rps for k, v in best.items()} == {"a": 300.0, "b": 60.0}


def _rows() -> list[dict]:
    figures = {  # server: {c: (rps, p50, p99)}
        "torchserve": {1: (150, 6.5, 8.0), 64: (9000, 7.0, 12.0)},
        "fastapi": {1: (500, 1.9, 3.0), 64: (2000, 30.0, 60.0)},
        "fastapi-batched": {1: (450, 2.1, 2.5), 64: (6000, 10.0, 15.0)},
    }
    return [peers.case_row(s, _result(r, c, p50, p99)) for s, by_c in figures.items()
            for c, (r, p50, p99) in by_c.items()]


def test_ratios_compare_ours_with_the_best_peer_per_concurrency():
    r1, r64 = peers.ratios(_rows())
    assert r1 == {"concurrency": 1, "best_peer": "fastapi", "rps_ratio": 0.3,
                  "p50_minus_best_peer_ms": 4.6, "p99_ratio_to_best_peer": 3.2}
    assert r64["best_peer"] == "fastapi-batched" and r64["rps_ratio"] == 1.5
    assert r64["p99_ratio_to_best_peer"] == 0.8
    met = {t["target"]: t["met"] for t in peers.targets(_rows())}
    assert met == {"p50 at c=1 within 1 ms of best peer's (difference, ms)": False,
                   "req/s at c=64 >= every peer's": True, "p99 at c=64 <= best peer's (ratio)": True}


def _grid(points: dict) -> list[dict]:
    """points: (batchSize, maxBatchDelay) -> (p50 at c=1, req/s at c=64)."""
    rows = []
    for (b, d), (p50, rps) in points.items():
        rows.append(dict(peers.case_row("torchserve", _result(100, 1, p50)), batchSize=b, maxBatchDelay=d))
        rows.append(dict(peers.case_row("torchserve", _result(rps, 64, 5.0)), batchSize=b, maxBatchDelay=d))
    return rows


def test_the_fastest_setting_within_the_latency_bound_is_chosen():
    grid = _grid({(32, 5): (6.6, 9500), (32, 1): (2.8, 9100), (8, 1): (2.7, 8000), (32, 0): (2.5, 7000)})
    choice = peers.choose_defaults(grid, _rows())  # best peer p50 at c=1: 1.9 -> bound 2.9
    assert (choice["batchSize"], choice["maxBatchDelay"], choice["objective_met"]) == (32, 1, True)
    assert choice["p50_bound_ms"] == 2.9 and choice["rps_c64"] == 9100
    assert {(e["batchSize"], e["maxBatchDelay"]) for e in choice["eligible"]} == {(32, 1), (8, 1), (32, 0)}


def test_a_setting_torchserve_did_not_apply_as_written_is_never_chosen():
    grid = _grid({(32, 0): (2.0, 9900), (32, 1): (2.8, 9100)})
    for row in grid:
        row["applied"] = {"batchSize": row["batchSize"], "maxBatchDelay": row["maxBatchDelay"] or 100}
    choice = peers.choose_defaults(grid, _rows())
    assert (choice["batchSize"], choice["maxBatchDelay"]) == (32, 1)
    assert choice["eligible"] == [{"batchSize": 32, "maxBatchDelay": 1}]


def test_without_a_setting_within_the_bound_the_lowest_latency_within_noise_is_chosen():
    grid = _grid({(32, 5): (6.6, 9500), (32, 2): (4.2, 9300), (32, 1): (3.4, 9100), (8, 1): (3.1, 8000)})
    choice = peers.choose_defaults(grid, _rows())  # nothing <= 2.9 ms: bound 3.1 + 0.5 = 3.6 ms
    assert (choice["batchSize"], choice["maxBatchDelay"], choice["objective_met"]) == (32, 1, False)
    assert choice["p50_bound_ms"] == 3.6 and "the lowest such point's" in choice["rule_applied"]
    assert {(e["batchSize"], e["maxBatchDelay"]) for e in choice["eligible"]} == {(32, 1), (8, 1)}


def test_a_setting_slower_than_the_best_peer_at_high_load_is_not_chosen_for_its_latency():
    # batchSize 1 answers fastest at c=1 but serves less than the best peer's 6000 req/s at c=64.
    grid = _grid({(1, 1): (1.5, 900), (32, 1): (3.0, 9100), (8, 1): (3.2, 5000)})
    choice = peers.choose_defaults(grid, _rows())
    assert (choice["batchSize"], choice["maxBatchDelay"], choice["objective_met"]) == (32, 1, False)
    assert choice["rps_floor"] == 6000 and choice["throughput_met"]


def test_result_files_follow_the_schema(tmp_path):
    results = {
        "machine": {"cpus": 2, "platform": "test", "cpu_model": "Test CPU", "loadavg_start": [0, 0, 0],
                    "loadavg_end": [0, 0, 0]},
        "started": "now", "total_s": 1.0, "model_config": {"batchSize": 32},
        "settings": {"duration_s": 1, "warmup_s": 0, "rounds": 1, "grid_rounds": 1, "processes": 2,
                     "peer_max_batch": 32, "peer_max_delay_ms": 0.0},
        "cases": _rows(), "ratios": peers.ratios(_rows()), "targets": peers.targets(_rows()),
        "explanation_cases": [peers.case_row("fastapi-batched", _result(900))],
        "grid": _grid({(32, 1): (2.8, 9100)}),
        "refused": {"ray-serve": "'x': label 'World' instead of 'Sports'"},
        "unavailable": {},
    }
    results["choice"] = peers.choose_defaults(results["grid"], results["cases"])
    paths = peers_report.write(results, tmp_path)
    assert [p.name for p in paths] == ["peers.json", "peers.md", "peers.png"]
    saved = json.loads(paths[0].read_text())
    assert saved["cases"] and all(set(peers_report.CASE_KEYS) <= set(c) for c in saved["cases"])
    assert {c["server"] for c in saved["cases"]} <= set(peers.SERVERS)
    text = paths[1].read_text()
    assert "| fastapi-batched | 64 | 6000 | 10.00 | 15.00 |" in text
    assert "| 64 | fastapi-batched | 1.5 | -3.0 | 0.8 |" in text
    assert "**ray-serve refused**" in text
    assert "| 32 | 1 | 100 | 2.80 | 2.00 | 9100 | 5.00 | 2.00 |" in text
    assert "Chosen: batchSize 32, maxBatchDelay 1." in text
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_peer_cases_are_refused_before_anything_starts(capsys):
    from bench.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["peers", "--cases", "peers,gird"])
    assert exit_.value.code == 2
    assert "unknown case(s) gird; choose from peers,explanations,grid" in capsys.readouterr().err


def test_missing_peer_packages_get_a_one_line_hint_not_a_traceback(tmp_path, monkeypatch, capsys):
    import importlib.util

    from bench.__main__ import main
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    for name in ("news_cnn.mar", "config.properties"):
        (tmp_path / name).write_text("")
    code = main(["peers", "--mar", str(tmp_path / "news_cnn.mar"), "--artifacts", str(tmp_path),
                 "--config", str(tmp_path / "config.properties"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "ray not installed" in err and "make bench-peers" in err
    assert not (tmp_path / "out").exists()
