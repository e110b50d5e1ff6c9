"""Unit tests of the benchmark's parts (no TorchServe): archives, wrk against a local HTTP
server, answer comparison, in-process timing, reports."""
from __future__ import annotations

import json
import shutil
import time
import zipfile

import pytest

from bench import archives, benchmark, echo_handler, harness, headlines, load, profile, report
from tests.helpers import fake_http


@pytest.fixture
def http_echo():
    with fake_http.serve(fake_http.EchoHandler, auth="Bearer k") as (url, _):
        yield f"{url}/predictions/echo"


def test_echo_handler_answers_each_request_with_its_body():
    assert echo_handler.handle(None, object()) is None
    assert echo_handler.handle([{"body": b"a"}, {"data": {"text": "b"}}, {}], object()) == \
        [b"a", {"text": "b"}, b""]


def test_model_config_rewrite_keeps_everything_else(tmp_path):
    mar = archives.build_echo(tmp_path / "store", {"batchSize": 4, "maxBatchDelay": 10,
                                                   "minWorkers": 1, "maxWorkers": 1})
    assert archives.read_model_config(mar)["batchSize"] == 4
    copy = archives.with_model_config(mar, tmp_path / "store" / "b1.mar", {"batchSize": 1})
    assert archives.read_model_config(copy) == {"batchSize": 1, "maxBatchDelay": 10,
                                                "minWorkers": 1, "maxWorkers": 1}
    with zipfile.ZipFile(mar) as a, zipfile.ZipFile(copy) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        assert a.read("echo_handler.py") == b.read("echo_handler.py")


def test_variant_overrides_merge_the_handler_section():
    base = {"batchSize": 16, "handler": {"max_chars": 1000, "num_threads": 1}}
    merged = benchmark._variant_overrides(base, {"minWorkers": 1, "handler": {"num_threads": 2}})
    assert merged == {"minWorkers": 1, "handler": {"max_chars": 1000, "num_threads": 2}}


def test_load_refuses_other_hosts():
    with pytest.raises(ValueError):
        load.require_loopback("http://example.com/predictions/x")
    load.require_loopback("http://127.0.0.1:1/x")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make wrk)")
def test_wrk_counts_requests_statuses_and_stops_at_its_budget(http_echo):
    bodies = headlines.json_bodies(headlines.SAMPLE)
    result = load.run_wrk(http_echo, bodies, concurrency=4, duration_s=3, max_requests=200,
                          auth="Bearer k")
    assert result.statuses == {"200": result.requests}
    assert 200 <= result.requests < 400  # each of the 2 threads stops after its 100 answers
    assert result.duration_s < 2.5  # the time to the last answer, not wrk's whole -d
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    refused = load.run_wrk(http_echo, bodies, concurrency=2, duration_s=1, max_requests=20,
                           auth="Bearer wrong")
    assert set(refused.statuses) == {"401"} and refused.ok == 0


SAME = ("label", "abstained")  # what the reliability suite compares exactly


def test_served_answers_match_the_reference_within_the_probability_tolerance(tiny_artifacts):
    reference = harness.reference_answers(tiny_artifacts, ["final tennis tournament", "oil prices"])
    answer = json.loads(json.dumps(reference["oil prices"]))
    assert harness.disagreement(reference["oil prices"], answer, same=SAME) is None
    nudged = dict(answer, probabilities={k: v + 5e-5 for k, v in answer["probabilities"].items()})
    assert harness.disagreement(reference["oil prices"], nudged, same=SAME) is None
    wrong = dict(answer, probabilities={k: v + 1e-3 for k, v in answer["probabilities"].items()})
    assert "probabilities differ" in harness.disagreement(reference["oil prices"], wrong, same=SAME)
    assert "label 'nope'" in harness.disagreement(reference["oil prices"], dict(answer, label="nope"))
    assert "not an answer object" in harness.disagreement(reference["oil prices"], None)


def test_an_abstention_matches_only_an_abstention(tiny_artifacts):
    reference = harness.reference_answers(tiny_artifacts, ["zzz qqq", "oil prices"])
    abstained = json.loads(json.dumps(reference["zzz qqq"]))
    assert abstained["abstained"] == "no_known_words"
    assert harness.disagreement(reference["zzz qqq"], abstained, same=SAME) is None
    answered = json.loads(json.dumps(reference["oil prices"]))
    # probabilities where none belong
    assert harness.disagreement(reference["zzz qqq"], dict(answered, label=None, abstained="no_known_words"),
                                same=SAME)
    assert harness.disagreement(reference["oil prices"], dict(answered, label=None, probabilities=None,
                                                              abstained="no_known_words"), same=SAME)
    assert harness.disagreement(reference["zzz qqq"], dict(abstained, abstained=None), same=SAME)


def test_time_per_item_reports_microseconds_per_headline():
    from bench import inprocess
    # 2 ms per call of 4 headlines: at least 500 us each (sleep never returns early); the
    # upper bound leaves room for a loaded machine, not for a unit or divisor mistake.
    result = inprocess.time_per_item(lambda: time.sleep(0.002), items=4, min_seconds=0.1)
    assert 500 <= result["us_per_headline_best"] <= result["us_per_headline_median"] < 2000
    assert result["headlines_per_call"] == 4


def test_inprocess_timings_cover_handler_and_forward(tiny_artifacts):
    from bench import inprocess
    result = inprocess.measure(tiny_artifacts, headlines.SAMPLE, batch=4, min_seconds=0.05)
    for key in ("handler_1", "handler_4", "forward_1", "forward_4", "encode_1", "encode_4"):
        assert result[key]["headlines_per_call"] == int(key.split("_")[1])
    # The handler parses, encodes, runs the forward pass and formats: it cannot cost less
    # per headline than the forward pass alone (one headline: no batching to amortise it).
    assert result["handler_1"]["us_per_headline_best"] > result["forward_1"]["us_per_headline_best"]
    assert result["torch_threads"] == 1


def _results() -> dict:
    row = {"case": "floor", "concurrency": 16, "requests": 100, "duration_s": 1.0, "rps": 100.0,
           "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0, "statuses": {"200": 100},
           "socket_errors": 0}
    return {
        "machine": {"cpus": 2, "cpu_model": "Test CPU", "platform": "test",
                    "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0]},
        "started": "now", "settings": {"duration_s": 1, "warmup_s": 0}, "model_config": {},
        "throughput": [dict(row, name="echo c=16"),
                       dict(row, name="predictions c=16", rps=95.0, rps_share=0.95, p99_ms=3.3,
                            p99_ratio=1.1, reference="echo c=16"),
                       dict(row, case="explanations", name="explanations c=16", rps=40.0,
                            rps_share=0.42, p99_ratio=2.0, reference="predictions c=16")],
        "inprocess": {"torch_threads": 1,
                      **{f"{k}_{n}": {"us_per_headline_median": 10.0} for k in
                         ("handler", "encode", "forward") for n in (1, 32)}},
    }


def test_goals_compare_each_figure_with_its_threshold():
    results = _results()
    goals = {g["goal"]: g["met"] for g in benchmark.goals(results)}
    assert goals == {"predictions c=16 >= 0.9 x echo req/s": True,
                     "predictions c=16 p99 <= 1.5 x echo p99": True,
                     "handler in-process <= 1000 us per headline (1 headline)": True,
                     "explanations >= 0.5 x predictions req/s": False}


def test_report_writes_json_markdown_and_png(tmp_path):
    results = _results()
    results["goals"] = benchmark.goals(results)
    paths = report.write(results, tmp_path)
    assert json.loads(paths[0].read_text())["throughput"][1]["rps_share"] == 0.95
    text = paths[1].read_text()
    assert "| floor | predictions c=16 | 95 | 0.95 |" in text
    assert "2 CPUs (Test CPU, test)" in text
    assert "| explanations >= 0.5 x predictions req/s | 0.42 | no |" in text
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collapsed_stacks_are_summarised(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("main (a.py:1);work (a.py:2) 3\nmain (a.py:1);idle (a.py:3) 1\n")
    text = profile.summarize_collapsed(path)
    assert "4 samples" in text
    assert "75.0 | work (a.py:2)" in text and "100.0 | main (a.py:1)" in text


def test_unknown_case_names_are_refused_before_anything_starts(capsys):
    from bench.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--cases", "floor,flor"])
    assert exit_.value.code == 2
    assert "unknown case(s) flor; choose from startup,floor" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["peers", "--cases", ","])
    assert "(none given)" in capsys.readouterr().err
