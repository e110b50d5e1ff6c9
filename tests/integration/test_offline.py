"""`--archive` answers as the served archive: the same file predicted and explained by a real
TorchServe and in process through the handler (serving/offline.py)."""
from __future__ import annotations

import csv

import pytest

from client import batch, tables
from client.api import NewsClient
from client.commands import ArchiveInProcess
from serving.offline import OfflineModel
from tests.helpers.tiny_artifacts import MIXED_HEADLINES
from tests.helpers.torchserve import served_archive


def read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_archive_in_process_answers_as_the_served_archive(tiny_artifacts, tmp_path):
    source = tmp_path / "in.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["title", "n"]] + [[h, i] for i, h in enumerate(MIXED_HEADLINES * 20)])
    options = batch.BatchOptions(probabilities=True)
    with served_archive(tiny_artifacts, tmp_path) as ts:
        served = NewsClient.local(ts.config, ts.key_file)
        batch.predict_file(served, str(source), str(tmp_path / "served.csv"), options)
        served_explained = batch.explain_file(served, str(source), options)
    with OfflineModel(tmp_path / "model_store" / "news_cnn.mar") as offline:
        batch.predict_file(ArchiveInProcess(offline), str(source), str(tmp_path / "offline.csv"), options)
        offline_explained = batch.explain_file(ArchiveInProcess(offline), str(source), options)
    served_rows, offline_rows = read(tmp_path / "served.csv"), read(tmp_path / "offline.csv")
    assert len(served_rows) == len(MIXED_HEADLINES) * 20
    for one, other in zip(served_rows, offline_rows, strict=True):
        for column, value in one.items():
            if column == "confidence" or column.startswith(tables.PROBABILITY_PREFIX):
                assert float(value or "nan") == pytest.approx(float(other[column] or "nan"), abs=2e-6,
                                                              nan_ok=True)
            else:
                assert value == other[column], column
    assert sum(bool(r["error"]) for r in served_rows) == 2 * 20 and any(r["abstained"] for r in served_rows)
    floats = ("token_scores", "delta", "probabilities")  # compared within rounding below
    for (_, one), (_, other) in zip(served_explained, offline_explained, strict=True):
        assert one.error == other.error
        if one.answer is not None:
            assert {k: v for k, v in one.answer.items() if k not in floats} \
                == {k: v for k, v in other.answer.items() if k not in floats}
            assert one.answer.get("token_scores") == pytest.approx(other.answer.get("token_scores"), abs=1e-5)
