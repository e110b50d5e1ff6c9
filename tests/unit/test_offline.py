"""`--archive`: the archived model answered in process through the handler (serving/offline.py):
a .mar and its artifacts directory agree, an archive with other code than the checkout's is
named, and a bad path is one line. tests/integration/test_offline.py compares its answers with
the served model's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from client import news_cnn
from model.predictor import Predictor
from serving.archive import build_archive
from serving.offline import OfflineError, OfflineModel
from serving.properties import REPO_ROOT
from tests.helpers.tiny_artifacts import MIXED_HEADLINES

READABLE = [h for h in MIXED_HEADLINES if h.strip() and len(h) < 1000]  # what the handler answers


@pytest.fixture(scope="module")
def mar(tiny_artifacts, tmp_path_factory):
    return build_archive(tiny_artifacts, tmp_path_factory.mktemp("store"), version="3.1")


def calls(model: OfflineModel) -> list:
    bodies = [{"texts": READABLE}, {"text": MIXED_HEADLINES[0]}, {"texts": MIXED_HEADLINES},
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
    assert news_cnn.main(["predict", "--archive", str(tiny_artifacts), *READABLE]) == 0
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
    assert news_cnn.main(["predict", "--archive", str(path), "Oil prices"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(OfflineError):
        OfflineModel(path)


def test_a_reader_that_stops_early_ends_the_run_quietly(tiny_artifacts, tmp_path):
    """`news-cnn predict --archive ... --file big.csv | head -1`: exit 0, no traceback, and no
    abort from torch still computing in a thread when the interpreter exits."""
    source = tmp_path / "in.csv"
    source.write_text("title\n" + "Tennis cup final starts next week in the league\n" * 5000)
    repo = str(REPO_ROOT)
    process = subprocess.Popen([sys.executable, "-m", "client.news_cnn", "predict", "--archive",
                                str(tiny_artifacts), "--file", str(source)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": repo})
    assert process.stdout.readline().startswith(b"title,label,")
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"terminate" not in err and b"error" not in err
