"""`news-cnn predict --file x.parquet --out y.parquet`: the same answers as the CSV run, the
input's columns and types kept, read and written in chunks, and a run that stops or is asked
to --resume leaves no broken file."""
from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from client import batch, parquet, tables
from client.api import ClientError
from client.commands import ArchiveInProcess, execute
from client.news_cnn import build_parser
from serving.offline import OfflineModel
from tests.unit.test_offline_pool import write_headlines


@pytest.fixture(scope="module")
def model(tiny_artifacts):
    with OfflineModel(tiny_artifacts) as offline:
        yield ArchiveInProcess(offline)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The same 300 headlines as CSV and as Parquet (an int64 id), read in batches of 64."""
    monkeypatch.setattr(parquet, "BATCH_ROWS", 64)
    texts = write_headlines(tmp_path / "in.csv", 300)
    pq.write_table(pa.table({"id": list(range(len(texts))), "title": texts}), tmp_path / "in.parquet",
                   row_group_size=100)
    return tmp_path / "in.csv", tmp_path / "in.parquet"


def test_parquet_answers_are_the_csv_answers_with_the_input_types_kept(model, files, tmp_path):
    source_csv, source_parquet = files
    options = batch.BatchOptions(probabilities=True)
    batch.predict_file(model, str(source_csv), str(tmp_path / "out.csv"), options)
    summary = batch.predict_file(model, str(source_parquet), str(tmp_path / "out.parquet"), options)
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        expected = list(csv.DictReader(f))
    written = pq.ParquetFile(tmp_path / "out.parquet")
    assert written.metadata.num_row_groups == 5  # 300 rows, a row group every 64
    rows = written.read().to_pylist()
    assert written.schema_arrow.field("id").type == pa.int64()
    assert [r["id"] for r in rows] == list(range(300)) and summary.refused == 2
    for row, want in zip(rows, expected, strict=True):
        assert row["title"] == want["title"] and row["label"] == (want["label"] or None)
        assert row["error"] == (want["error"] or None) and row["abstained"] == (want["abstained"] or None)
        for column in [c for c in want if c == "confidence" or c.startswith(tables.PROBABILITY_PREFIX)]:
            assert row[column] == pytest.approx(float(want[column] or "nan"), abs=1e-6, nan_ok=True) \
                if want[column] else row[column] is None


class StopsAfter:
    """`model`, failing as a server that went away on its `count`-th request."""

    def __init__(self, model, count: int) -> None:
        self.model, self.count, self.requests = model, count, 0

    def send(self, body: dict, explain: bool = False) -> object:
        self.requests += 1
        if self.requests >= self.count:
            raise ClientError("the server went away")
        return self.model.send(body, explain)

    def metadata(self) -> dict:
        return {**self.model.metadata(), "max_texts": 16}


def test_a_stopped_run_leaves_no_file_and_keeps_the_old_one(model, files, tmp_path):
    _, source = files
    out = tmp_path / "out.parquet"
    out.write_bytes(b"an earlier output")
    with pytest.raises(ClientError):
        batch.predict_file(StopsAfter(model, 10), str(source), str(out), batch.BatchOptions(in_flight=1),
                           force=True)
    assert out.read_bytes() == b"an earlier output"
    assert list(tmp_path.glob(".*partial")) == []


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "--resume cannot finish a Parquet output"),
    ([], "exists: --force replaces it"),
    (["--out", "-"], "a Parquet output needs a file"),
])
def test_what_parquet_cannot_do_is_one_line(model, files, tmp_path, capsys, argv, message):
    _, source = files
    (tmp_path / "out.parquet").write_bytes(b"kept")
    out = str(tmp_path / "out.parquet")
    args = build_parser().parse_args(["predict", "--file", str(source), "--out", out, *argv])
    assert execute(args, model) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "out.parquet").read_bytes() == b"kept"


def test_a_file_that_is_not_parquet_is_one_line(model, tmp_path, capsys):
    (tmp_path / "in.parquet").write_text("title\nOil prices\n")
    args = build_parser().parse_args(["predict", "--file", str(tmp_path / "in.parquet"), "--out",
                                      str(tmp_path / "out.parquet")])
    assert execute(args, model) == 2
    assert "is not a Parquet file" in capsys.readouterr().err
