"""`--archive`: the archived model answered in process through the handler (serving/offline.py),
with the answers the served model gives; a .mar and its artifacts directory agree, an
archive with other code than the checkout's is named, and a bad path is one line."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from client import batch, console
from client.api import NewsClient
from client.console import InProcess
from tests.helpers.torchserve import served_archive
from model.predictor import Predictor
from serving.archive import build_archive
from serving.offline import OfflineError, OfflineModel

HEADLINES = ["The final tennis tournament starts next week.", "Oil prices and stocks market",
             "President election vote", "zzz qqq", "", "Rocket space software talks",
             "tennis " * 200, "Bank war talks in the league cup"]
READABLE = [h for h in HEADLINES if h.strip() and len(h) < 1000]  # what the handler answers


@pytest.fixture(scope="module")
def mar(tiny_artifacts, tmp_path_factory):
    return build_archive(tiny_artifacts, tmp_path_factory.mktemp("store"), version="3.1")


def calls(model: OfflineModel) -> list:
    bodies = [{"texts": READABLE}, {"text": HEADLINES[0]}, {"texts": HEADLINES},
              {"texts": []}, ["not", "an", "object"]]
    return [model.call(body, explain) for body in bodies for explain in (False, True)]


def test_an_archive_and_its_artifacts_directory_answer_alike(mar, tiny_artifacts):
    with OfflineModel(mar) as packed, OfflineModel(tiny_artifacts) as unpacked:
        answers = calls(packed)
        assert answers == calls(unpacked)
        assert packed.metadata()["version"] == "3.1"  # the archive's own manifest
        unpacked_dir = packed.context.system_properties["model_dir"]
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 4 and set(statuses) == {200, 400}
    assert not Path(unpacked_dir).exists()  # the unpacked copy is removed


def test_answers_are_the_in_process_predictors(tiny_artifacts, capsys):
    assert console.main(["predict", "--archive", str(tiny_artifacts), *READABLE]) == 0
    assert json.loads(capsys.readouterr().out) == Predictor.from_dir(tiny_artifacts).predict(READABLE)


def test_an_archive_with_other_code_is_named_in_a_warning(mar, tmp_path, capsys):
    changed = tmp_path / "changed.mar"
    with zipfile.ZipFile(mar) as source, zipfile.ZipFile(changed, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data + b"\n# changed\n" if item.filename == "model/preprocess.py" else data)
    with OfflineModel(mar):
        assert "warning" not in capsys.readouterr().err
    with OfflineModel(changed):
        warning = capsys.readouterr().err
    assert "model/preprocess.py differs from this checkout's" in warning and warning.count("\n") == 1


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.mar", "does not exist"),
    (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "neither a .mar"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "lacks artifact files"),
])
def test_an_archive_that_cannot_be_loaded_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert console.main(["predict", "--archive", str(path), "Oil prices"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(OfflineError):
        OfflineModel(path)


def read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.integration
def test_the_archive_in_process_answers_as_the_served_archive(tiny_artifacts, tmp_path):
    source = tmp_path / "in.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["title", "n"]] + [[h, i] for i, h in enumerate(HEADLINES * 20)])
    options = batch.BatchOptions(probabilities=True)
    with served_archive(tiny_artifacts, tmp_path) as ts:
        served = NewsClient.from_config(ts.config, ts.key_file)
        batch.predict_file(served, str(source), str(tmp_path / "served.csv"), options)
        served_explained = batch.explain_file(served, str(source), options)
    with OfflineModel(tmp_path / "model_store" / "news_cnn.mar") as offline:
        batch.predict_file(InProcess(offline), str(source), str(tmp_path / "offline.csv"), options)
        offline_explained = batch.explain_file(InProcess(offline), str(source), options)
    served_rows, offline_rows = read(tmp_path / "served.csv"), read(tmp_path / "offline.csv")
    assert len(served_rows) == len(HEADLINES) * 20
    for one, other in zip(served_rows, offline_rows):
        for column, value in one.items():
            if column == "confidence" or column.startswith(batch.PROBABILITY_PREFIX):
                assert float(value or "nan") == pytest.approx(float(other[column] or "nan"), abs=2e-6,
                                                              nan_ok=True)
            else:
                assert value == other[column], column
    assert sum(bool(r["error"]) for r in served_rows) == 2 * 20 and any(r["abstained"] for r in served_rows)
    floats = ("token_scores", "delta", "probabilities")  # compared within rounding below
    for (_, one), (_, other) in zip(served_explained, offline_explained):
        assert one.error == other.error
        if one.answer is not None:
            assert {k: v for k, v in one.answer.items() if k not in floats} \
                == {k: v for k, v in other.answer.items() if k not in floats}
            assert one.answer.get("token_scores") == pytest.approx(other.answer.get("token_scores"), abs=1e-5)


def test_a_reader_that_stops_early_ends_the_run_quietly(tiny_artifacts, tmp_path):
    """`news-cnn predict --archive ... --file big.csv | head -1`: exit 0, no traceback, and no
    abort from torch still computing in a thread when the interpreter exits."""
    source = tmp_path / "in.csv"
    source.write_text("title\n" + "Tennis cup final starts next week in the league\n" * 5000)
    repo = str(Path(__file__).resolve().parent.parent)
    process = subprocess.Popen([sys.executable, "-m", "client.console", "predict", "--archive",
                                str(tiny_artifacts), "--file", str(source)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": repo})
    assert process.stdout.readline().startswith(b"title,label,")
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"terminate" not in err and b"error" not in err
