"""A small end-to-end training run on a CSV and word vectors written by the test (seconds)."""
import json

import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from model import artifacts
from model.config import ModelConfig
from model.encoders import Tokenizer
from model.predictor import Predictor
from tests.helpers.tiny_headlines import STOPWORDS, write_csv, write_glove
from training import pipeline
from training.config import EXPERIMENTS, TrainConfig
from training.parallel import can_fork
from training.timing import STEP_SECONDS

EVAL_ROWS = 20


def tiny_run(tmp, threads: int, evaluate: bool = False):
    """One run of every experiment on 60 tiny headlines (scored on 20 others with
    `evaluate`); returns the artifact directory."""
    evaluation = str(write_csv(tmp / "eval.csv", rows_per_class=EVAL_ROWS // 4, seed=1)) if evaluate else None
    config = TrainConfig(data=str(write_csv(tmp / "news.csv")), eval_data=evaluation,
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
    """Every experiment in this process, one after the other, scored on an evaluation set."""
    return tiny_run(tmp_path_factory.mktemp("tiny_run"), threads=1, evaluate=True)


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
        assert set(result["per_class"]) == {"Business", "Sci/Tech", "Sports", "World"}
        assert result["overall"]["support"] == 9 and result["validation"]["support"] == 9
    # Every tiny headline carries three words of its own class and none of another: the
    # reference separates them perfectly (1.0 with seeds 1234, 1 and 2), a broken split,
    # label encoding or evaluation would not.
    assert metrics["experiments"]["tfidf_logreg"]["overall"]["weighted_f1"] == 1.0
    assert metrics["experiments"]["tfidf_logreg"]["validation"]["weighted_f1"] == 1.0
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


def test_saved_model_reproduces_the_reported_test_score(trained):
    # The served artifacts (preprocessor, tokenizer, weights, temperature) must give the
    # predictions the training run scored: any skew between training and serving shows here.
    predictor = Predictor.from_dir(trained)
    test = pd.read_csv(trained / pipeline.TEST_SPLIT)
    predicted = [a["label"] for a in predictor.predict(test["title"].tolist())]
    reported = artifacts.read_json(trained, artifacts.METRICS)["experiments"]["glove_finetuned"]
    assert f1_score(test["category"], predicted, average="weighted") == pytest.approx(
        reported["overall"]["weighted_f1"], abs=1e-4)
    answers = predictor.predict(["The nasdaq stadium"])
    assert answers[0]["unknown_tokens"] == 0  # never in training, but in the tail


def test_trust_metrics_are_saved(trained):
    metrics = artifacts.read_json(trained, artifacts.METRICS)
    calibration = metrics["calibration"]
    served = ModelConfig.load(trained / artifacts.MODEL_CONFIG).temperature
    assert served == (calibration["fitted_temperature"] if calibration["applied"] else 1.0)
    faithfulness = metrics["faithfulness"]
    assert [v["headlines"] for v in faithfulness["by_k"].values()] == [9, 9, 9]
    for side in ("words_against", "ngrams_for", "ngrams_against"):  # both explanations, both sides
        assert list(faithfulness[side]) == ["1", "2", "3"], side


def test_saved_flip_counts_equal_a_recount_with_the_served_model(trained):
    # Recounted through the serving path (saved artifacts, Predictor.predict's labels), not
    # training.behaviour: a wrong count there or a train/serve skew shows here.
    predictor = Predictor.from_dir(trained)
    test = pd.read_csv(trained / pipeline.TEST_SPLIT)
    saved = artifacts.read_json(trained, artifacts.METRICS)["flip_rate"]
    words = saved["words_per_class"]
    headlines = pairs = flips = 0
    for title, category in zip(test["title"], test["category"], strict=True):
        label = predictor.predict([title])[0]["label"]
        if label != category:
            continue
        headlines += 1
        edited = [f"{title} {word}" for name, extra in words.items() if name != category for word in extra]
        pairs += len(edited)
        flips += sum(a["label"] != label for a in predictor.predict(edited))
    assert (saved["headlines"], saved["pairs"], saved["flips"]) == (headlines, pairs, flips)
    assert headlines > 0  # else the recount compared nothing


def test_the_evaluation_set_is_scored_and_reported_first(trained):
    metrics = artifacts.read_json(trained, artifacts.METRICS)
    assert list(metrics)[0] == "eval"
    scored = metrics["eval"]
    assert scored["rows"] == EVAL_ROWS and scored["overall"]["support"] == EVAL_ROWS
    assert set(scored["per_class"]) == {"Business", "Sci/Tech", "Sports", "World"}
    assert scored["ece"] == metrics["calibration"]["eval_ece"]
    assert scored["flip_rate"]["pairs"] > 0 and scored["faithfulness"]["by_k"]["1"]["headlines"] > 0
    for name in EXPERIMENTS:
        assert metrics["experiments"][name]["eval"]["overall"]["support"] == EVAL_ROWS, name
    # The TF-IDF reference separates these headlines perfectly (as on the test split).
    assert metrics["experiments"]["tfidf_logreg"]["eval"]["overall"]["weighted_f1"] == 1.0
    header = (trained / pipeline.EXPERIMENTS_TABLE).read_text().split("\n| experiment |")[1]
    assert header.split("|")[0].strip() == "eval weighted F1"
    manifest = artifacts.read_json(trained, artifacts.MANIFEST)
    assert manifest["eval_metrics"] == scored["overall"]


def test_the_served_model_reproduces_the_reported_evaluation_score(trained):
    predictor = Predictor.from_dir(trained)
    evaluation = pd.read_csv(artifacts.read_json(trained, artifacts.METRICS)["eval"]["data"])
    predicted = [a["label"] for a in predictor.predict(evaluation["title"].tolist())]
    reported = artifacts.read_json(trained, artifacts.METRICS)["eval"]["overall"]["weighted_f1"]
    scored = f1_score(evaluation["category"], predicted, average="weighted")
    assert scored == pytest.approx(reported, abs=1e-4)


def test_test_split_csv(trained):
    test = pd.read_csv(trained / pipeline.TEST_SPLIT)
    assert list(test.columns) == ["title", "category"] and len(test) == 9


@pytest.mark.skipif(not can_fork(), reason="experiments run side by side only where processes fork")
def test_experiments_side_by_side_give_the_one_by_one_results(trained, tmp_path):
    """Three worker processes (one thread each): every experiment's metrics and the archived
    weights are those of the one-by-one run, bit for bit. That run had an evaluation set and
    this one has none: the evaluation set changes nothing that is trained."""
    forked = tiny_run(tmp_path, threads=3)

    def scores(directory):
        return {name: (r["overall"], r["per_class"], r["history"])
                for name, r in artifacts.read_json(directory, artifacts.METRICS)["experiments"].items()}

    assert scores(forked) == scores(trained)
    weights, expected = torch.load(forked / artifacts.WEIGHTS), torch.load(trained / artifacts.WEIGHTS)
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in weights)
    steps = json.loads((forked / STEP_SECONDS).read_text())
    assert {f"{name}/epochs" for name in EXPERIMENTS if name != "tfidf_logreg"} <= set(steps)


def test_the_reference_profile_describes_the_validation_split_not_the_evaluation_set(trained):
    profile = artifacts.read_json(trained, artifacts.REFERENCE_PROFILE)
    split = artifacts.read_json(trained, artifacts.METRICS)["split"]
    assert profile["headlines"] == split["val"] != EVAL_ROWS
    assert set(profile["label_shares"]) == {"Business", "Sci/Tech", "Sports", "World"}
    assert sum(profile["label_shares"].values()) == pytest.approx(1.0)
    assert profile["confidence_buckets"]["+Inf"] == 1.0
