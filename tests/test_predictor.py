"""Predictor: the calibrated probabilities it serves (see training/calibration.py)."""
import shutil

import pytest
import torch

from model import artifacts
from model.config import ModelConfig
from model.predictor import Predictor

HEADLINES = ["Stocks and oil prices rally", "Rocket launch to space next week", "Tennis cup final"]


def with_temperature(source, target, temperature: float):
    shutil.copytree(source, target)
    config = ModelConfig.load(target / artifacts.MODEL_CONFIG)
    config.temperature = temperature
    config.save(target / artifacts.MODEL_CONFIG)
    return Predictor.from_dir(target)


def test_temperature_divides_the_logits_and_keeps_the_argmax(tiny_artifacts, tmp_path):
    plain = Predictor.from_dir(tiny_artifacts)
    assert plain.model.config.temperature == 1.0  # configs saved before calibration load as 1.0
    hot = with_temperature(tiny_artifacts, tmp_path / "hot", 3.0)
    ids = plain.encode(HEADLINES).ids
    logits = plain.model(ids).detach()
    assert torch.allclose(plain.probabilities(ids), torch.softmax(logits, dim=1), atol=1e-6)
    assert torch.allclose(hot.probabilities(ids), torch.softmax(logits / 3.0, dim=1), atol=1e-6)
    assert [a["label"] for a in hot.predict(HEADLINES)] == [a["label"] for a in plain.predict(HEADLINES)]
    # A temperature above 1 flattens: the top probability drops for every headline.
    assert (hot.probabilities(ids).amax(dim=1) < plain.probabilities(ids).amax(dim=1)).all()


def test_non_positive_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        ModelConfig(vocab_size=10, num_classes=4, temperature=0.0)
