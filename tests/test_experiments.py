"""A small end-to-end training run on a CSV and word vectors written by the test (seconds)."""
import json

import pandas as pd
import pytest
import torch

from model import artifacts
from model.encoders import Tokenizer
from model.predictor import Predictor
from tiny_headlines import STOPWORDS, write_csv, write_glove
from training import pipeline
from training.config import EXPERIMENTS, TrainConfig
from training.parallel import can_fork
from training.timing import STEP_SECONDS


def tiny_run(tmp, threads: int):
    """One run of every experiment on 60 tiny headlines; returns the artifact directory."""
    config = TrainConfig(data=str(write_csv(tmp / "news.csv")),
                         embeddings=str(write_glove(tmp / "glove.txt")), out=str(tmp / "artifacts"),
                         vocab_size=40, max_pretrained_words=3, embedding_dim=8, epochs=2,
                         batch_size=8, threads=threads)
    patch = pytest.MonkeyPatch()
    patch.setattr(pipeline, "english_stopwords", lambda: list(STOPWORDS))
    try:
        return pipeline.run(config)
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every experiment in this process, one after the other."""
    return tiny_run(tmp_path_factory.mktemp("tiny_run"), threads=1)


def test_every_artifact_is_written(trained):
    for name in artifacts.SERVING_FILES + (artifacts.METRICS, pipeline.EXPERIMENTS_TABLE,
                                           pipeline.CONFUSION_MATRIX, pipeline.LOSS_CURVES,
                                           pipeline.TEST_SPLIT, pipeline.TRAIN_CONFIG):
        assert (trained / name).is_file(), name
    assert not [p for p in trained.parent.iterdir() if p.name.startswith(".artifacts.")]


def test_metrics_cover_every_experiment(trained):
    metrics = artifacts.read_json(trained, artifacts.METRICS)
    assert list(metrics["experiments"]) == list(EXPERIMENTS)
    assert metrics["archived"] == "glove_finetuned"
    for result in metrics["experiments"].values():
        assert 0 <= result["overall"]["weighted_f1"] <= 1
        assert set(result["per_class"]) == {"Business", "Sci/Tech", "Sports", "World"}
    table = (trained / pipeline.EXPERIMENTS_TABLE).read_text()
    assert all(f"| {name}" in table for name in EXPERIMENTS)


def test_manifest(trained):
    manifest = artifacts.read_json(trained, artifacts.MANIFEST)
    assert manifest["version"] == "1.0" and manifest["experiment"] == "glove_finetuned"
    assert manifest["data"]["rows"] == 60 and len(manifest["data"]["md5"]) == 32
    assert manifest["vocab_coverage"]["vocab_share"] == 1.0
    assert "weighted_f1" in manifest["test_metrics"]


def test_open_vocabulary_tail_is_saved(trained):
    tokenizer = Tokenizer.load(trained / artifacts.TOKENIZER)
    tail = tokenizer.index_to_token[tokenizer.num_trainable:]
    # Frequency order of the vectors file; stopwords and non-alphanumeric words skipped.
    assert tail[:2] == ["nasdaq", "satellite"] and len(tail) == 3
    assert "the" not in tail and "e-mail" not in tail


def test_saved_model_predicts(trained):
    predictor = Predictor.from_dir(trained)
    answers = predictor.predict(["Stocks and oil prices rally", "The nasdaq stadium"])
    assert all(a["label"] in predictor.labels.classes for a in answers)
    assert answers[1]["unknown_tokens"] == 0  # never in training, but in the tail
    thresholds = json.loads((trained / artifacts.FILTER_THRESHOLDS).read_text())
    assert set(thresholds["widths"]) == {"1", "2", "3"}


def test_test_split_csv(trained):
    test = pd.read_csv(trained / pipeline.TEST_SPLIT)
    assert list(test.columns) == ["title", "category"] and len(test) == 9


@pytest.mark.skipif(not can_fork(), reason="experiments run side by side only where processes fork")
def test_experiments_side_by_side_give_the_one_by_one_results(trained, tmp_path):
    """Three worker processes (one thread each): every experiment's metrics and the archived
    weights are those of the one-by-one run, bit for bit."""
    forked = tiny_run(tmp_path, threads=3)

    def scores(directory):
        return {name: (r["overall"], r["per_class"], r["history"])
                for name, r in artifacts.read_json(directory, artifacts.METRICS)["experiments"].items()}

    assert scores(forked) == scores(trained)
    weights, expected = torch.load(forked / artifacts.WEIGHTS), torch.load(trained / artifacts.WEIGHTS)
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in weights)
    steps = json.loads((forked / STEP_SECONDS).read_text())
    assert {f"{name}/epochs" for name in EXPERIMENTS if name != "tfidf_logreg"} <= set(steps)
