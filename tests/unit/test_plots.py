"""The explanation picture: a real explanation in, a non-empty PNG out; what argues for and
against the predicted class drawn apart; an abstention drawn as one."""
from __future__ import annotations

import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from client.plots import AGAINST_COLOR, FOR_COLOR, explanation_figure, plot_explanation, shade
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
    explainer = Explainer(model.eval(), LabelEncoder(["a", "b", "c"]), ig_steps=4)
    return explainer.explain(batch, [1] * len(rows))


def test_png_is_written(tmp_path):
    explanation = {**explanation_for([[3, 7, 11, 12]])[0], "label": "b"}
    path = tmp_path / "explanation.png"
    plot_explanation(explanation, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 5000  # a blank canvas would be far smaller


def test_an_abstained_headline_gets_a_picture_that_says_so(tmp_path):
    explanation = {**explanation_for([[]])[0], "label": None, "probabilities": None}
    assert explanation["abstained"] == "no_known_words"
    path = tmp_path / "empty.png"
    plot_explanation(explanation, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert "abstained (no_known_words)" in explanation_figure(explanation)._suptitle.get_text()


# "nvidia" argues against Business, "shares" and "shares soar" for it.
HAND_MADE = {
    "label": "Business", "tokens": ["nvidia", "shares", "soar"],
    "ngrams": {"1": {"ngram": "shares", "start": 1, "end": 2, "score": 0.8, "filters": 2, "runners_up": []},
               "2": {"ngram": "shares soar", "start": 1, "end": 3, "score": 1.1, "filters": 1,
                     "runners_up": []},
               "3": None},
    "opposing_ngrams": {"1": {"ngram": "nvidia", "start": 0, "end": 1, "score": -1.2, "filters": 3,
                              "runners_up": []},
                        "2": None, "3": None},
    "token_scores": [-1.2, 0.8, 0.3], "delta": 0.01,
}


def test_each_span_is_drawn_once_over_its_words_coloured_by_its_sign():
    span_axes, bar_axes = explanation_figure(HAND_MADE).axes
    title = span_axes.figure._suptitle.get_text()
    assert "for  shares soar (+1.10), shares (+0.80)" in title and "against  nvidia (-1.20)" in title
    boxes = [(round(p.get_x() + 0.45), round(p.get_x() + 0.45 + p.get_width() + 0.1), p.get_facecolor())
             for p in span_axes.patches if isinstance(p, Rectangle)]
    # Strongest first, one row each; the largest |score| (nvidia, 1.2) is drawn fully opaque.
    assert [b[:2] for b in boxes] == [(1, 3), (1, 2), (0, 1)]
    assert boxes[0][2][:3] == to_rgba(FOR_COLOR)[:3] and boxes[1][2][:3] == to_rgba(FOR_COLOR)[:3]
    assert boxes[2][2] == to_rgba(AGAINST_COLOR, 1.0)
    assert boxes[1][2][3] < boxes[0][2][3] < 1.0  # 0.8 fainter than 1.1
    texts = sorted(t.get_text() for t in span_axes.texts)
    assert texts == ["nvidia  -1.20", "shares  +0.80", "shares soar  +1.10"]
    # The words share the spans' colours and scale.
    assert [bar.get_facecolor() for bar in bar_axes.patches] == [
        shade(-1.2, 1.2), shade(0.8, 1.2), shade(0.3, 1.2)]
    legend = [t.get_text() for t in bar_axes.get_legend().get_texts()]
    assert legend == ["for the predicted class", "against it"]


def test_a_prediction_is_not_an_explanation(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        plot_explanation({"label": "b", "probabilities": {}}, tmp_path / "x.png")
