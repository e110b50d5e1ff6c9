"""bench.compare: its table and its refusals (the load itself runs in `make bench-compare`)."""
from __future__ import annotations

from bench import compare


def _row(endpoint: str, c: int, base_rps: float, cand_rps: float) -> dict:
    return {"endpoint": endpoint, "concurrency": c,
            "baseline": {"rps": base_rps, "p99_ms": 10.0}, "candidate": {"rps": cand_rps, "p99_ms": 12.0},
            "rps_ratio": round(cand_rps / base_rps, 3), "p99_ratio": 1.2}


def test_markdown_lists_every_row_with_its_ratio():
    result = {"rows": [_row("predictions", 16, 1000, 950), _row("explanations", 16, 600, 500)],
              "batching": {"baseline": {"batchSize": 32, "maxBatchDelay": 5}},
              "explanations_share_c16": {"baseline": 0.6, "candidate": 0.526},
              "machine": {"cpus": 2, "cpu_model": "Test CPU", "loadavg_start": [0.5, 0, 0]}}
    table = compare.markdown(result)
    assert "| predictions | 16 | 1000 | 950 | 0.95 |" in table
    assert "| explanations | 16 | 600 | 500 | 0.833 |" in table
    assert "candidate 0.526" in table
    assert "2 CPUs (Test CPU)" in table  # figures name the CPU they come from


def test_a_missing_baseline_is_refused_with_a_message_before_anything_starts(tmp_path, capsys):
    from bench.__main__ import main
    (tmp_path / "new.mar").write_text("")
    code = main(["compare", "--baseline", str(tmp_path / "old.mar"), "--mar", str(tmp_path / "new.mar"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "old.mar is missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
