"""`news-cnn predict --archive X --file`: the archive in a pool of processes
(serving/offline_pool.py) writes the very file the archive in this process writes (answers,
refused rows and their messages, input order), --resume finishes a cut-off output, and an
archive that cannot be loaded is one line."""
from __future__ import annotations

import csv
import random

import pytest

from client import batch, news_cnn
from client.commands import ArchiveInProcess
from serving.offline import OfflineError, OfflineModel
from serving.offline_pool import ArchivePool
from tests.helpers.tiny_artifacts import MIXED_HEADLINES, TINY_WORDS


def write_headlines(path, count: int) -> list[str]:
    """`count` rows (id, title): random tiny-vocabulary headlines with MIXED_HEADLINES (an
    empty one and one over max_chars among them, which the handler refuses) strewn in."""
    rng = random.Random(3)
    texts = [" ".join(rng.sample(TINY_WORDS, rng.randint(1, 5))) for _ in range(count)]
    for index, text in zip(rng.sample(range(count), len(MIXED_HEADLINES)), MIXED_HEADLINES, strict=True):
        texts[index] = text
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "title"]] + [[str(i), t] for i, t in enumerate(texts)])
    return texts


@pytest.fixture(scope="module")
def pool(tiny_artifacts):
    # Requests of 16: a 300-row file is 19 requests over 2 processes, answered out of order.
    with ArchivePool(tiny_artifacts, workers=2, max_texts=16) as model:
        yield model


@pytest.fixture(scope="module")
def in_process(tiny_artifacts, tmp_path_factory):
    """The file and what the archive answered in this process writes for it."""
    root = tmp_path_factory.mktemp("in_process")
    texts = write_headlines(root / "in.csv", 300)
    with OfflineModel(tiny_artifacts, handler_settings={"max_texts": 16}) as model:
        batch.predict_file(ArchiveInProcess(model), str(root / "in.csv"), str(root / "out.csv"),
                           batch.BatchOptions(probabilities=True))
    return root / "in.csv", (root / "out.csv").read_bytes(), texts


def test_the_pool_writes_what_one_process_writes(pool, in_process, tmp_path):
    source, expected, texts = in_process
    summary = batch.predict_file(pool, str(source), str(tmp_path / "out.csv"),
                                 batch.BatchOptions(probabilities=True, in_flight=6))
    assert (tmp_path / "out.csv").read_bytes() == expected
    assert pool.metadata()["max_texts"] == 16
    # The two refused headlines (empty, too long) got their error; the others an answer.
    assert summary.rows == len(texts) and summary.refused == 2


def test_resume_finishes_a_cut_off_output_with_the_pool(pool, in_process, tmp_path):
    source, expected, _ = in_process
    out = tmp_path / "out.csv"
    lines = expected.split(b"\n")
    out.write_bytes(b"\n".join(lines[:120]) + b"\n" + lines[120][:10])  # 119 rows, half of one
    summary = batch.predict_file(pool, str(source), str(out), batch.BatchOptions(probabilities=True),
                                 resume=True)
    assert out.read_bytes() == expected
    assert summary.resumed == 119 and summary.rows == 300 - 119


def test_the_command_scores_a_file_with_workers(tiny_artifacts, in_process, tmp_path, capsys):
    source, expected, _ = in_process
    out = tmp_path / "out.csv"
    assert news_cnn.main(["predict", "--archive", str(tiny_artifacts), "--workers", "2", "--file",
                          str(source), "--out", str(out), "--probabilities"]) == 0
    # Requests of the pool's 512 headlines: the same file as requests of 16 in one process.
    assert out.read_bytes() == expected
    assert "300 rows" in capsys.readouterr().err


def test_an_archive_the_workers_cannot_load_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OfflineError, match="lacks artifact files"):
        ArchivePool(tmp_path / "empty", workers=2)
    assert news_cnn.main(["predict", "--archive", str(tmp_path / "empty"), "--file", "in.csv"]) == 2
    err = capsys.readouterr().err
    assert "lacks artifact files" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--workers", "0", "--file", "in.csv"], ["--workers", "2", "Oil prices"]])
def test_workers_takes_a_positive_count_and_goes_with_file(tiny_artifacts, capsys, argv):
    assert news_cnn.main(["predict", "--archive", str(tiny_artifacts), *argv]) == 2
    assert "--workers takes 1 or more and goes with --archive and --file" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--workers", "2", "--file", "in.csv"], "--workers takes 1 or more and goes with --archive and --file"),
    (["--ray", "--file", "in.csv", "--out", "answers"], "--ray scores --file PATH with --archive")])
def test_the_in_process_options_without_archive_are_refused_not_ignored(argv, message, capsys):
    """Without --archive the headlines would go to the server, ignoring these options."""
    assert news_cnn.main(["--url", "http://127.0.0.1:1", "predict", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1
