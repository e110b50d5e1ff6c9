"""Full training on the real headlines when DATA points at them (CI sets DATA; skipped
otherwise): see the `trained_artifacts` fixture in conftest.py.

Thresholds come from 5-fold cross-validation of the archived recipe (docs/training.md),
not from one run's figure, so another CPU or BLAS does not fail CI on a third decimal.
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

# 5-fold CV of the archived recipe: weighted F1 CV_F1_MEAN ± CV_F1_STD (sample std over
# folds). A run's test-split F1 below mean - 3 std is a regression, not noise.
CV_F1_MEAN, CV_F1_STD = 0.8370, 0.0076
MIN_WEIGHTED_F1 = round(CV_F1_MEAN - 3 * CV_F1_STD, 3)
# Same CV: one-word flip rate FLIP_MEAN ± FLIP_STD; above mean + 3 std is a regression.
FLIP_MEAN, FLIP_STD = 0.225, 0.020
MAX_FLIP_RATE = round(FLIP_MEAN + 3 * FLIP_STD, 3)


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
    # random one: measured 0.195 vs 0.038 (seed 1234; 0.181 vs 0.041 and 0.200 vs 0.039 with
    # seeds 1 and 2), so about 5x; required at least 2x.
    k1 = metrics["faithfulness"]["by_k"]["1"]
    assert k1["top"] >= 2 * k1["random"]


def test_one_word_flip_rate(metrics):
    assert metrics["flip_rate"]["flip_rate"] <= MAX_FLIP_RATE


def test_calibration_is_reported_and_served(trained_artifacts, metrics):
    calibration = metrics["calibration"]
    config = json.loads((trained_artifacts / artifacts.MODEL_CONFIG).read_text())
    assert config["temperature"] == calibration["temperature"]
    # The recipe (label smoothing) leaves the model underconfident; measured with seeds 1234,
    # 1 and 2: temperature 0.69, 0.73, 0.71 applied, test ECE 0.103 -> 0.018, 0.087 -> 0.019,
    # 0.109 -> 0.031 (after / before at most 0.28). Required: applied, and at most half.
    assert calibration["applied"]
    assert calibration["test_ece"]["after"] <= 0.5 * calibration["test_ece"]["before"]
    # The served model (saved weights and temperature) has the reported test ECE.
    predictor = Predictor.from_dir(trained_artifacts)
    test = pd.read_csv(trained_artifacts / "test.csv")
    probs = predictor.probabilities(predictor.encode(test["title"].astype(str).tolist()).ids).numpy()
    labels = np.array([predictor.labels.classes.index(c) for c in test["category"]])
    assert expected_calibration_error(probs, labels) == pytest.approx(calibration["test_ece"]["after"],
                                                                      abs=1e-4)
