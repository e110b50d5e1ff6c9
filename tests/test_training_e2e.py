"""Full training on the real headlines when DATA points at them (CI sets DATA; skipped
otherwise): see the `trained_artifacts` fixture in conftest.py."""
import json

from model import artifacts
from model.predictor import Predictor


def test_archived_model_beats_threshold_and_tfidf(trained_artifacts):
    metrics = json.loads((trained_artifacts / artifacts.METRICS).read_text())["experiments"]
    archived = metrics["glove_finetuned"]["overall"]["weighted_f1"]
    assert archived >= 0.84
    assert archived > metrics["tfidf_logreg"]["overall"]["weighted_f1"]


def test_serving_artifacts_load_and_predict(trained_artifacts):
    assert artifacts.missing_files(trained_artifacts) == []
    predictor = Predictor.from_dir(trained_artifacts)
    answer = predictor.predict(["Yankees beat Red Sox in extra innings"])[0]
    assert answer["label"] in predictor.labels.classes
