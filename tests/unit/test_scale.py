"""The scale script's helpers on tiny data: building repeated CSVs, measuring a process, tables."""
import json
import sys

import pandas as pd
import pytest

from bench import training_scale
from bench.training_scale import Run
from tests.helpers.tiny_headlines import write_csv


def test_repeated_csv_cycles_through_the_source(tmp_path):
    source = write_csv(tmp_path / "news.csv", rows_per_class=5)  # 20 rows
    target = training_scale.build_repeated_csv(source, 45, tmp_path / "out" / "news_45.csv")
    original = pd.read_csv(source)
    built = pd.read_csv(target)
    assert list(built.columns) == ["title", "category"] and len(built) == 45
    assert built.iloc[40:].reset_index(drop=True).equals(original.iloc[:5])
    assert built.iloc[:20].equals(original) and built.iloc[20:40].reset_index(drop=True).equals(original)


def test_repeated_csv_reads_the_canonical_format(tmp_path):
    source = tmp_path / "train.csv"
    source.write_text('3,"Oil prices climb","Crude rose."\n2,"Cup final tonight","Fans wait."\n')
    built = pd.read_csv(training_scale.build_repeated_csv(source, 3, tmp_path / "news_3.csv"))
    assert built.values.tolist() == [["Oil prices climb", "Business"], ["Cup final tonight", "Sports"],
                                     ["Oil prices climb", "Business"]]


def test_fewer_rows_than_the_source_keeps_its_first_rows(tmp_path):
    source = write_csv(tmp_path / "news.csv", rows_per_class=5)
    built = pd.read_csv(training_scale.build_repeated_csv(source, 7, tmp_path / "news_7.csv"))
    assert built.equals(pd.read_csv(source).iloc[:7])


def test_zero_rows_is_a_message(tmp_path, capsys):
    code = training_scale.main(["--data", str(write_csv(tmp_path / "news.csv")), "--rows", "0",
                       "--out", str(tmp_path / "scale")])
    assert code == 2 and capsys.readouterr().err.startswith("error: --rows 0")


ALLOCATE = "import time; block = bytearray({mb} * 2**20); time.sleep({seconds})"


def test_measure_reports_wall_time_peak_memory_and_exit_code():
    burn = "; t = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    program = ALLOCATE.format(mb=200, seconds=0.3) + burn + "\nraise SystemExit(3)"
    wall, cpu, peak, code, _ = training_scale.measure([sys.executable, "-c", program])
    assert code == 3 and wall >= 0.6 and 0.3 <= cpu < wall
    assert 200 * 2**20 < peak < 400 * 2**20


def test_measure_adds_up_the_process_tree():
    # Parent and child each hold 150 MB at once: one process's own peak would say ~150 MB.
    child = ALLOCATE.format(mb=150, seconds=1.5)
    parent = ("import subprocess, sys, time; block = bytearray(150 * 2**20); "
              f"subprocess.run([sys.executable, '-c', {child!r}])")
    _, _, peak, code, _ = training_scale.measure([sys.executable, "-c", parent])
    assert code == 0 and peak > 280 * 2**20


def test_measure_kills_a_run_past_its_timeout():
    wall, _, _, code, error = training_scale.measure([sys.executable, "-c", "import time; time.sleep(30)"],
                                            timeout=0.5)
    assert code != 0 and wall < 10 and "killed after" in error


def run(rows, command, wall, steps=None):
    return Run(rows=rows, command=command, argv=[], wall_seconds=wall, cpu_seconds=wall * 1.5,
               peak_memory_mb=1234.5, exit_code=0, step_seconds=steps or {})


HOST = {"cpu_model": "Intel Xeon Processor", "cores_usable": 2, "python": "3.11", "date": "2026-11-26"}


def test_markdown_table_rows_and_slowest_steps_of_the_largest_run():
    runs = [run(10_000, "serve", 65.4, {"read": 1.0}),
            run(120_000, "train", 300.0, {"read": 3.0, "fasttext/vectors": 60.0, "random/epochs": 90.0}),
            run(120_000, "serve", 100.0, {"glove_finetuned/epochs": 50.0})]
    text = training_scale.markdown(runs, HOST, note="shared machine")
    assert text.startswith("Measured on Intel Xeon Processor, 2 cores usable, 2026-11-26; shared machine.")
    assert "| 10,000 | `make serve` training step | 1:05 | 1:38 | 1,234 | 0 |" in text
    assert "| 120,000 | `make train` (all experiments) | 5:00 | 7:30 | 1,234 | 0 |" in text
    steps = text.split("Where the time goes: `make train` (all experiments) at 120,000 rows "
                       "(slowest steps, 5:00 wall")[1]
    assert steps.index("| random/epochs | 90.0 | 30% |") < steps.index("| fasttext/vectors | 60.0 | 20% |") \
        < steps.index("| read | 3.0 | 1% |")


def test_run_all_writes_json_and_markdown_after_each_run(tmp_path, monkeypatch):
    source = write_csv(tmp_path / "news.csv", rows_per_class=5)
    # Stand-in for `python -m training`: writes the step times a real run writes.
    fake = ("import json, pathlib, sys; out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1]); "
            "out.mkdir(parents=True); (out / 'step_seconds.json').write_text(json.dumps({'read': 0.5}))")
    monkeypatch.setattr(training_scale, "training_argv", lambda data, out, command, extra=():
                        [sys.executable, "-c", fake, "--data", str(data), "--out", str(out), command])
    runs = training_scale.run_all(source, [30, 50], ["serve"], tmp_path / "scale")
    assert [(r.rows, r.command, r.exit_code, r.step_seconds) for r in runs] == \
        [(30, "serve", 0, {"read": 0.5}), (50, "serve", 0, {"read": 0.5})]
    saved = json.loads((tmp_path / "scale" / "scale.json").read_text())
    assert [r["rows"] for r in saved["runs"]] == [30, 50] and saved["machine"]["cores_usable"] >= 1
    assert len(pd.read_csv(tmp_path / "scale" / "data" / "news_50.csv")) == 50
    assert "| 50 | `make serve` training step |" in (tmp_path / "scale" / "scale.md").read_text()


def test_training_argv_matches_the_make_targets(tmp_path):
    serve = training_scale.training_argv(tmp_path / "d.csv", tmp_path / "a", "serve", ["--threads", "1"])
    train = training_scale.training_argv(tmp_path / "d.csv", tmp_path / "a", "train")
    assert serve[1:3] == ["-m", "training"] and serve[-3:] == ["--archived-only", "--threads", "1"]
    assert "--archived-only" not in train


@pytest.mark.parametrize("seconds, text", [(59.6, "1:00"), (125, "2:05"), (0, "0:00")])
def test_minutes(seconds, text):
    assert training_scale._minutes(seconds) == text


def test_checkout_without_the_training_package_is_a_message(tmp_path, capsys):
    code = training_scale.main(["--data", str(write_csv(tmp_path / "news.csv")), "--rows", "20",
                       "--checkout", str(tmp_path), "--out", str(tmp_path / "scale")])
    assert code == 2 and "--checkout" in capsys.readouterr().err
