"""Full training on the real headlines when DATA points at them (CI sets DATA; skipped
otherwise), scored on canonical_dev.csv when EVAL points at it (CI sets it too): see the
`trained_artifacts` fixture in conftest.py.

Thresholds come from repeated measurements of the archived recipe (docs/training.md):
5-fold cross-validation on news.csv for the test split, 10 seeds for canonical_dev; not
from one run's figure, so another CPU or BLAS does not fail CI on a third decimal.
"""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from model import artifacts
from model.predictor import Predictor
from training.calibration import expected_calibration_error
from training.config import TFIDF, TrainConfig

# 5-fold CV of the archived recipe on news.csv: weighted F1 CV_F1_MEAN ± CV_F1_STD (sample
# std over folds). A run's test-split F1 below mean - 3 std is a regression, not noise.
CV_F1_MEAN, CV_F1_STD = 0.8408, 0.0103
MIN_WEIGHTED_F1 = round(CV_F1_MEAN - 3 * CV_F1_STD, 3)
# Same CV: one-word flip rate FLIP_MEAN ± FLIP_STD; above mean + 3 std is a regression.
FLIP_MEAN, FLIP_STD = 0.204, 0.011
MAX_FLIP_RATE = round(FLIP_MEAN + 3 * FLIP_STD, 3)

# canonical_dev.csv: 3,800 official AG News test titles (a stratified half of that set),
# headlines from across the collection period that news.csv (its first 10,000 training
# rows) never saw. The bounds below were measured on this file only.
CANONICAL_DEV_MD5 = "f526427b63c50c838b5bc62dd2e5d811"
# The archived recipe, seeds 1234, 1, ..., 9 (`python -m training --archived-only --seed S
# --eval-data canonical_dev.csv`): weighted F1 0.8405, 0.8413, 0.8335, 0.8365, 0.8344, 0.8368,
# 0.8333, 0.8321, 0.8378, 0.8307.
EVAL_F1_MEAN, EVAL_F1_STD = 0.8357, 0.0035
MIN_EVAL_F1 = round(EVAL_F1_MEAN - 3 * EVAL_F1_STD, 3)
# Same runs: one-word flip rate 22.5, 23.1, 24.8, 26.1, 23.1, 23.9, 28.7, 25.0, 26.3, 26.4 %.
EVAL_FLIP_MEAN, EVAL_FLIP_STD = 0.250, 0.019
MAX_EVAL_FLIP_RATE = round(EVAL_FLIP_MEAN + 3 * EVAL_FLIP_STD, 3)
# The requirement on the served probabilities there, not a statistical bound: the same
# 10 runs measured ECE 0.010-0.026 (mean 0.020, std 0.005; seed 1234, what CI trains: 0.022).
MAX_EVAL_ECE = 0.03


@pytest.fixture(scope="module")
def metrics(trained_artifacts) -> dict:
    return json.loads((trained_artifacts / artifacts.METRICS).read_text())


def test_archived_model_beats_threshold_and_tfidf(metrics):
    runs = metrics["experiments"]
    archived = runs[TrainConfig().archive]["overall"]["weighted_f1"]
    assert archived >= MIN_WEIGHTED_F1
    assert archived > runs[TFIDF]["overall"]["weighted_f1"]


def test_served_model_reproduces_the_reported_test_score(trained_artifacts, metrics):
    # Preprocessing, tokenizer, weights and temperature as served give the scored predictions.
    predictor = Predictor.from_dir(trained_artifacts)
    test = pd.read_csv(trained_artifacts / "test.csv")
    predicted = [a["label"] for a in predictor.predict(test["title"].tolist())]
    reported = metrics["experiments"][TrainConfig().archive]["overall"]["weighted_f1"]
    assert f1_score(test["category"], predicted, average="weighted") == pytest.approx(reported, abs=1e-4)


def test_word_scores_are_faithful(metrics):
    # Deleting the top-scored word must cost the predicted class far more than deleting a
    # random one: measured 0.192 vs 0.047 (seed 1234; 0.182-0.196 vs 0.043-0.044 with seeds
    # 1-4), so about 4x; required at least 2x.
    k1 = metrics["faithfulness"]["by_k"]["1"]
    assert k1["top"] >= 2 * k1["random"]
    # And it must come close to the largest drop any one word can cause: the top-scored
    # word reached 0.963 ± 0.004 of it on the test split (seeds 1234, 1-9; lowest 0.956).
    # Required 0.90, 14 std below the mean, which still fails a known bug: word scores
    # summing |IG| over the embedding dimensions reached 0.87 (seed 1234).
    assert 0.90 <= k1["share_of_best"] <= 1.0


def test_ngrams_are_faithful_on_both_sides(metrics):
    """Each side of the n-gram explanation moves the probability the way it says, on the
    test split. Measured with seeds 1234, 1-4 of the archived recipe (2026-12-05):
    - deleting the top n-gram against the class raised its probability in 92.3, 95.0, 94.4,
      95.1 and 91.6 % of the headlines that have one (mean 93.7 %, std 1.6): required 88 %,
      below mean - 3 std (88.9 %). The n-grams of the code before scored 38.5 % (seed 1234);
    - deleting the top n-gram for it cost 2.23-2.52 times as much as as many random words
      (mean 2.39, std 0.11): required 2.0, below mean - 3 std (2.06);
    - keeping only that n-gram lost -0.046 to -0.023 (it alone is more sure than the whole
      headline), against 0.134-0.144 for as many random words: required below half of random;
    - an n-gram against the class is listed in 99.6-99.8 % as many headlines as have a word
      scored against it: required 98 %.
    """
    faithfulness = metrics["faithfulness"]
    against, ngrams_for = faithfulness["ngrams_against"]["1"], faithfulness["ngrams_for"]["1"]
    assert against["raised"] >= 0.88
    assert ngrams_for["top"] >= 2.0 * ngrams_for["random"]
    assert ngrams_for["sufficiency"]["top"] <= 0.5 * ngrams_for["sufficiency"]["random"]
    assert against["share"] >= 0.98 * faithfulness["words_against"]["1"]["share"]


def test_one_word_flip_rate(metrics):
    assert metrics["flip_rate"]["flip_rate"] <= MAX_FLIP_RATE


def test_calibration_is_reported_and_served(trained_artifacts, metrics):
    calibration = metrics["calibration"]
    config = json.loads((trained_artifacts / artifacts.MODEL_CONFIG).read_text())
    assert config["temperature"] == calibration["temperature"]
    # Measured with seeds 1234, 1, 2, 3, 4: temperature 0.60-0.64 served, test ECE after it
    # 0.018-0.037 (mean 0.026, std 0.0077); the bound is above mean + 3 std.
    assert calibration["test_ece"]["after"] <= 0.05
    # The served model (saved weights and temperature) has the reported test ECE.
    predictor = Predictor.from_dir(trained_artifacts)
    test = pd.read_csv(trained_artifacts / "test.csv")
    probs = predictor.probabilities(predictor.encode(test["title"].astype(str).tolist()).ids).numpy()
    labels = np.array([predictor.labels.classes.index(c) for c in test["category"]])
    assert expected_calibration_error(probs, labels) == pytest.approx(calibration["test_ece"]["after"],
                                                                      abs=1e-4)


@pytest.fixture(scope="module")
def canonical_dev(metrics) -> dict:
    """The run's figures on canonical_dev.csv; skipped when the run had no such EVAL."""
    scored = metrics.get("eval")
    if scored is None:
        pytest.skip("set EVAL=path/to/canonical_dev.csv (CI does) to check accuracy on headlines "
                    "the model never saw")
    if scored["md5"] != CANONICAL_DEV_MD5:
        pytest.skip(f"EVAL={scored['data']} is not canonical_dev.csv, on which the bounds were measured")
    return scored


def test_accuracy_on_headlines_the_model_never_saw(canonical_dev):
    assert canonical_dev["overall"]["weighted_f1"] >= MIN_EVAL_F1


def test_served_probabilities_are_calibrated_on_canonical_dev(canonical_dev):
    assert canonical_dev["ece"]["after"] <= MAX_EVAL_ECE


def test_one_word_flip_rate_on_canonical_dev(canonical_dev):
    assert canonical_dev["flip_rate"]["flip_rate"] <= MAX_EVAL_FLIP_RATE
