"""The explanation picture: a real explanation in, a non-empty PNG out; what argues for and
against the predicted class drawn apart; an abstention drawn as one."""
from __future__ import annotations

import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from client.plots import AGAINST_COLOR, FOR_COLOR, explanation_figure, plot_explanation
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


def test_an_abstained_headline_gets_a_picture_that_says_so(tmp_path):
    explanation = {**explanation_for([[]])[0], "label": None, "probabilities": None}
    assert explanation["abstained"] == "no_known_words"
    path = tmp_path / "empty.png"
    plot_explanation(explanation, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert "abstained (no_known_words)" in explanation_figure(explanation)._suptitle.get_text()


# "nvidia" is picked by a filter favouring another class and scores against Business.
HAND_MADE = {
    "label": "Business", "tokens": ["nvidia", "shares", "soar"], "filter_selection": "informative",
    "activations": {"1": [1.0, 2.0, 0.5], "2": [None, 1.0, None], "3": [None, None, None]},
    "picks": {"1": [0, 2, 0], "2": [0, 1, 0], "3": [0, 0, 0]},
    "opposing_picks": {"1": [1, 0, 0], "2": [0, 0, 0], "3": [0, 0, 0]},
    "ngrams": {"1": {"ngram": "shares", "start": 1, "end": 2},
               "2": {"ngram": "shares soar", "start": 1, "end": 3},
               "3": {"ngram": None, "start": None, "end": None}},
    "opposing_ngrams": {"1": {"ngram": "nvidia", "start": 0, "end": 1, "favours": {"Sci/Tech": 1}},
                        "2": {"ngram": None, "start": None, "end": None},
                        "3": {"ngram": None, "start": None, "end": None}},
    "token_scores": [-1.2, 0.8, 0.3], "delta": 0.01,
}


def test_what_argues_against_the_class_is_drawn_apart_from_the_reason():
    heat_axes, bar_axes, _ = explanation_figure(HAND_MADE).axes  # heatmap, bars, colorbar
    title = heat_axes.figure._suptitle.get_text()
    assert "for  1: shares, 2: shares soar" in title and "against  1: nvidia" in title
    frames = [(p.get_x() + 0.5, p.get_width(), p.get_y() + 0.45, p.get_edgecolor(), p.get_linestyle())
              for p in heat_axes.patches if isinstance(p, Rectangle)]
    assert (1, 1, 0, to_rgba(FOR_COLOR), "solid") in frames  # width 1 (row 0): "shares"
    assert (1, 2, 1, to_rgba(FOR_COLOR), "solid") in frames  # width 2 (row 1): "shares soar"
    assert (0, 1, 0, to_rgba(AGAINST_COLOR), "dashed") in frames  # width 1: "nvidia", dashed red
    assert len(frames) == 3
    cells = sorted(t.get_text() for t in heat_axes.texts)
    assert cells == ["+1", "+2", "-1"]
    assert [bar.get_facecolor() for bar in bar_axes.patches] == [
        to_rgba(AGAINST_COLOR), to_rgba(FOR_COLOR), to_rgba(FOR_COLOR)]
    legend = [t.get_text() for t in bar_axes.get_legend().get_texts()]
    assert legend[:2] == ["word score for the predicted class", "word score against it"]


def test_a_prediction_is_not_an_explanation(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        plot_explanation({"label": "b", "probabilities": {}}, tmp_path / "x.png")
