"""The analysis of `make bench-peers`' figures: ratios to the best peer, the peer targets,
and the choice of batch settings from the grid."""
from __future__ import annotations

from bench.peers import choice as peer_choice
from tests.helpers.peer_rows import grid as _grid
from tests.helpers.peer_rows import rows as _rows


def test_ratios_compare_ours_with_the_best_peer_per_concurrency():
    r1, r64 = peer_choice.ratios(_rows())
    assert r1 == {"concurrency": 1, "best_peer": "fastapi", "rps_ratio": 0.3,
                  "p50_minus_best_peer_ms": 4.6, "p99_ratio_to_best_peer": 3.2}
    assert r64["best_peer"] == "fastapi-batched" and r64["rps_ratio"] == 1.5
    assert r64["p99_ratio_to_best_peer"] == 0.8
    met = {t["target"]: t["met"] for t in peer_choice.targets(_rows())}
    assert met == {"p50 at c=1 within 1 ms of best peer's (difference, ms)": False,
                   "req/s at c=64 >= every peer's": True, "p99 at c=64 <= best peer's (ratio)": True}


def test_the_fastest_setting_within_the_latency_bound_is_chosen():
    grid = _grid({(32, 5): (6.6, 9500), (32, 1): (2.8, 9100), (8, 1): (2.7, 8000), (32, 0): (2.5, 7000)})
    choice = peer_choice.choose_defaults(grid, _rows())  # best peer p50 at c=1: 1.9 -> bound 2.9
    assert (choice["batchSize"], choice["maxBatchDelay"], choice["objective_met"]) == (32, 1, True)
    assert choice["p50_bound_ms"] == 2.9 and choice["rps_c64"] == 9100
    assert {(e["batchSize"], e["maxBatchDelay"]) for e in choice["eligible"]} == {(32, 1), (8, 1), (32, 0)}


def test_a_setting_torchserve_did_not_apply_as_written_is_never_chosen():
    grid = _grid({(32, 0): (2.0, 9900), (32, 1): (2.8, 9100)})
    for row in grid:
        row["applied"] = {"batchSize": row["batchSize"], "maxBatchDelay": row["maxBatchDelay"] or 100}
    choice = peer_choice.choose_defaults(grid, _rows())
    assert (choice["batchSize"], choice["maxBatchDelay"]) == (32, 1)
    assert choice["eligible"] == [{"batchSize": 32, "maxBatchDelay": 1}]


def test_without_a_setting_within_the_bound_the_lowest_latency_within_noise_is_chosen():
    grid = _grid({(32, 5): (6.6, 9500), (32, 2): (4.2, 9300), (32, 1): (3.4, 9100), (8, 1): (3.1, 8000)})
    choice = peer_choice.choose_defaults(grid, _rows())  # nothing <= 2.9 ms: bound 3.1 + 0.5 = 3.6 ms
    assert (choice["batchSize"], choice["maxBatchDelay"], choice["objective_met"]) == (32, 1, False)
    assert choice["p50_bound_ms"] == 3.6 and "the lowest such point's" in choice["rule_applied"]
    assert {(e["batchSize"], e["maxBatchDelay"]) for e in choice["eligible"]} == {(32, 1), (8, 1)}


def test_a_setting_slower_than_the_best_peer_at_high_load_is_not_chosen_for_its_latency():
    # batchSize 1 answers fastest at c=1 but serves less than the best peer's 6000 req/s at c=64.
    grid = _grid({(1, 1): (1.5, 900), (32, 1): (3.0, 9100), (8, 1): (3.2, 5000)})
    choice = peer_choice.choose_defaults(grid, _rows())
    assert (choice["batchSize"], choice["maxBatchDelay"], choice["objective_met"]) == (32, 1, False)
    assert choice["rps_floor"] == 6000 and choice["throughput_met"]
