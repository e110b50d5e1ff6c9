"""The explanation picture: a real explanation in, a non-empty PNG out."""
from __future__ import annotations

import pytest
import torch

from client.plots import plot_explanation
from model.cnn import CNN
from model.config import ModelConfig
from model.encoders import LabelEncoder
from model.explain import Explainer
from model.predictor import EncodedBatch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def explanation_for(rows: list[list[int]]) -> list[dict]:
    torch.manual_seed(0)
    model = CNN(ModelConfig(vocab_size=30, num_classes=3, embedding_dim=6, num_filters=4, hidden_dim=5))
    length = max(3, max(len(r) for r in rows))
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    batch = EncodedBatch(ids=ids, tokens=[[f"word{t}" for t in r] for r in rows], unknown=[0] * len(rows))
    explainer = Explainer(model.eval(), LabelEncoder(["a", "b", "c"]), None, ig_steps=4)
    return explainer.explain(batch, [1] * len(rows))


def test_png_is_written(tmp_path):
    explanation = {**explanation_for([[3, 7, 11, 12]])[0], "label": "b"}
    path = tmp_path / "explanation.png"
    plot_explanation(explanation, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 5000  # a blank canvas would be far smaller


def test_an_empty_headline_still_gets_a_picture(tmp_path):
    path = tmp_path / "empty.png"
    plot_explanation(explanation_for([[]])[0], path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_a_prediction_is_not_an_explanation(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        plot_explanation({"label": "b", "probabilities": {}}, tmp_path / "x.png")
