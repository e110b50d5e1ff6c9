"""bench/peers.json, peers.md and peers.png as `make bench-peers` writes them."""
from __future__ import annotations

import json

from bench.peers import choice as peer_choice
from bench.peers import report as peers_report
from bench.peers import run as peers
from bench.peers import servers as peer_servers
from tests.helpers.peer_rows import grid as _grid
from tests.helpers.peer_rows import result as _result
from tests.helpers.peer_rows import rows as _rows


def test_result_files_follow_the_schema(tmp_path):
    results = {
        "machine": {"cpus": 2, "platform": "test", "cpu_model": "Test CPU", "loadavg_start": [0, 0, 0],
                    "loadavg_end": [0, 0, 0]},
        "started": "now", "total_s": 1.0, "model_config": {"batchSize": 32},
        "settings": {"duration_s": 1, "warmup_s": 0, "rounds": 1, "grid_rounds": 1, "processes": 2,
                     "peer_max_batch": 32, "peer_max_delay_ms": 0.0},
        "cases": _rows(), "ratios": peer_choice.ratios(_rows()), "targets": peer_choice.targets(_rows()),
        "explanation_cases": [peers.case_row("fastapi-batched", _result(900))],
        "grid": _grid({(32, 1): (2.8, 9100)}),
        "refused": {"ray-serve": "'x': label 'World' instead of 'Sports'"},
        "unavailable": {},
    }
    results["choice"] = peer_choice.choose_defaults(results["grid"], results["cases"])
    paths = peers_report.write(results, tmp_path)
    assert [p.name for p in paths] == ["peers.json", "peers.md", "peers.png"]
    saved = json.loads(paths[0].read_text())
    assert saved["cases"] and all(set(peers_report.CASE_KEYS) <= set(c) for c in saved["cases"])
    assert {c["server"] for c in saved["cases"]} <= set(peer_servers.SERVERS)
    text = paths[1].read_text()
    assert "| fastapi-batched | 64 | 6000 | 10.00 | 15.00 |" in text
    assert "| 64 | fastapi-batched | 1.5 | -3.0 | 0.8 |" in text
    assert "**ray-serve refused**" in text
    assert "| 32 | 1 | 100 | 2.80 | 2.00 | 9100 | 5.00 | 2.00 |" in text
    assert "Chosen: batchSize 32, maxBatchDelay 1." in text
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
