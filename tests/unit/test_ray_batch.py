"""`news-cnn predict --archive X --ray`: Ray Data in local mode scores a CSV file and a folder of
Parquet files with the labels the plain command writes, refused rows included, and says in one
line what to install when Ray is missing."""
from __future__ import annotations

import csv
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from client import news_cnn
from serving.archive import build_archive
from tests.unit.test_offline_pool import write_headlines


@pytest.fixture(scope="module")
def mar(tiny_artifacts, tmp_path_factory):
    return build_archive(tiny_artifacts, tmp_path_factory.mktemp("store"), version="1.0")


def read_dir(folder) -> list[dict]:
    return pq.read_table(folder).to_pylist()


def test_ray_writes_the_plain_commands_labels(mar, tmp_path, capsys):
    texts = write_headlines(tmp_path / "in.csv", 600)
    assert news_cnn.main(["predict", "--archive", str(mar), "--file", str(tmp_path / "in.csv"),
                          "--out", str(tmp_path / "plain.csv")]) == 0
    with open(tmp_path / "plain.csv", newline="", encoding="utf-8") as f:
        plain = list(csv.DictReader(f))
    # The same rows as a folder of two Parquet files.
    folder = tmp_path / "parquet_in"
    folder.mkdir()
    for part, rows in enumerate((range(0, 250), range(250, 600))):
        pq.write_table(pa.table({"id": list(rows), "title": [texts[i] for i in rows]}),
                       folder / f"part-{part}.parquet")
    for source, out in ((tmp_path / "in.csv", tmp_path / "ray_csv"), (folder, tmp_path / "ray_parquet")):
        assert news_cnn.main(["predict", "--archive", str(mar), "--ray", "--workers", "2", "--file",
                              str(source), "--out", str(out)]) == 0
        assert "600 rows to" in capsys.readouterr().err
        # Ray writes several files, in an order of its own: the id column joins them to the input.
        scored = sorted(read_dir(out), key=lambda r: int(r["id"]))
        assert [r["title"] for r in scored] == texts
        assert [r["label"] or "" for r in scored] == [r["label"] for r in plain]
        assert [r["error"] or "" for r in scored] == [r["error"] for r in plain]
        assert sum(bool(r["error"]) for r in scored) == 2


def test_without_ray_the_command_says_what_to_install(mar, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    write_headlines(tmp_path / "in.csv", 10)
    assert news_cnn.main(["predict", "--archive", str(mar), "--ray", "--file", str(tmp_path / "in.csv"),
                          "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'news-cnn[ray]'" in err and err.count("\n") == 1
