"""training/behaviour.py's one-word flip rate, the code on its own (tests/model/test_behavioral.py
runs it on the trained model), on keyword models whose answer to an appended word is known."""
import numpy as np
import torch

from model.encoders import LabelEncoder
from training.behaviour import OFF_TOPIC_WORDS, flip_rate

CLASSES = ["Business", "Sci/Tech", "Sports", "World"]
HEADLINES = ["stocks rally", "rocket launch", "league final", "election talks"]
LABELS = np.array([0, 1, 2, 3])


class KeywordModel:
    """Stands in for a Predictor: the class of the first (or last) word it knows decides."""

    def __init__(self, last_word_wins: bool) -> None:
        self.labels = LabelEncoder(CLASSES)
        self.last = last_word_wins
        self.word_class = {w: CLASSES.index(c) for c, words in OFF_TOPIC_WORDS.items() for w in words}
        self.word_class.update(stocks=0, rocket=1, league=2, election=3)

    def encode(self, texts):
        class Batch:
            ids = texts
        return Batch()

    def probabilities(self, texts):
        out = torch.zeros(len(texts), len(CLASSES))
        for row, text in enumerate(texts):
            known = [self.word_class[w] for w in text.split() if w in self.word_class]
            out[row, known[-1] if self.last else known[0]] = 1.0
        return out


def test_every_pair_flips_when_the_last_word_decides():
    report = flip_rate(KeywordModel(last_word_wins=True), HEADLINES, LABELS)
    # 4 correct headlines x 3 other classes x 5 words each.
    assert report["pairs"] == 60 and report["headlines"] == 4
    assert report["flip_rate"] == 1.0


def test_no_pair_flips_when_the_first_word_decides():
    assert flip_rate(KeywordModel(last_word_wins=False), HEADLINES, LABELS)["flip_rate"] == 0.0


def test_only_correctly_classified_headlines_count():
    wrong = np.array([1, 1, 2, 3])  # the first headline's label is not what the model says
    report = flip_rate(KeywordModel(last_word_wins=True), HEADLINES, wrong)
    assert report["headlines"] == 3 and report["pairs"] == 45
