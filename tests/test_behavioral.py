"""Behavioural tests of the trained model, in the spirit of Made-With-ML's
tests/model/test_behavioral.py: run on the `trained_artifacts` fixture (a real training run
on $DATA), skipped without DATA."""
from __future__ import annotations

import pytest

from model import artifacts
from model.explain import Explainer
from model.predictor import NO_KNOWN_WORDS, Predictor


@pytest.fixture(scope="module")
def trained_predictor(trained_artifacts) -> Predictor:
    return Predictor.from_dir(trained_artifacts)


# --- Abstention: nothing to read, no label (issue 10, item 3) -----------------------------
class TestAbstention:
    """Headlines with no word the model knows after preprocessing get `label: null` and
    `abstained`, never a class; readable headlines of the same batch are answered."""

    UNREADABLE = {
        "Chinese": "东京股市今日大幅上涨，投资者信心增强",
        "Japanese": "日本代表がワールドカップで勝利",
        "Korean": "삼성전자 주가 급등",
        "Arabic": "ارتفاع أسعار النفط في الأسواق العالمية",
        "emoji only": "🚀📈🔥 🎉⚽️",
        "stopwords only": "What is it that they were doing there?",
        "punctuation only": "!!! ... ??? -- ;;",
    }
    READABLE = ["Oil prices rise as stocks fall", "Yankees beat Red Sox in extra innings"]

    def test_unreadable_headlines_abstain_and_readable_neighbours_are_answered(self, trained_predictor):
        texts = [self.READABLE[0], *self.UNREADABLE.values(), self.READABLE[1]]
        answers = trained_predictor.predict(texts)
        for name, answer in zip(self.UNREADABLE, answers[1:-1]):
            assert answer["abstained"] == NO_KNOWN_WORDS, (name, answer)
            assert answer["label"] is None and answer["probabilities"] is None, name
        assert answers[0] == trained_predictor.predict(self.READABLE[:1])[0]
        assert answers[-1] == trained_predictor.predict(self.READABLE[1:])[0]
        assert answers[0]["abstained"] is None and answers[-1]["abstained"] is None

    def test_one_known_word_is_enough_to_answer(self, trained_predictor):
        answer = trained_predictor.predict(["东京股市 stocks 🚀"])[0]
        assert answer["abstained"] is None and answer["num_tokens"] == 1

    def test_explanations_of_unreadable_headlines_abstain_too(self, trained_predictor, trained_artifacts):
        explainer = Explainer(trained_predictor.model, trained_predictor.labels,
                              artifacts.read_json(trained_artifacts, artifacts.FILTER_THRESHOLDS))
        texts = [self.READABLE[0], self.UNREADABLE["emoji only"]]
        batch = trained_predictor.encode(texts)
        readable, unreadable = explainer.explain(batch, [0, 0])
        assert unreadable == {"tokens": [], "explained_class": None, "abstained": NO_KNOWN_WORDS}
        assert len(readable["token_scores"]) == len(readable["tokens"]) > 0


# --- Honest explanations: the reason presented argues for the class (issue 10, item 4) -----
class TestHonestExplanations:
    """On the test split, the top 1-gram presented as the reason rarely has a negative word
    score. Measured on news.csv with seeds 1234, 1, 2: 0.9 %, 0.6 %, 0.3 % of the headlines
    with a presented 1-gram; the former rule (the n-gram most picked by any counted filter,
    whatever class it favours) gave 9.4 %, 8.6 %, 7.6 %. The bound, 3 %, sits 2.1 points
    above the highest measured and 4.6 points below the former rule's lowest."""

    MAX_NEGATIVE_SHARE = 0.03

    def test_the_presented_1_gram_rarely_argues_against_the_class(self, trained_predictor,
                                                                  trained_artifacts):
        import pandas as pd

        explainer = Explainer(trained_predictor.model, trained_predictor.labels,
                              artifacts.read_json(trained_artifacts, artifacts.FILTER_THRESHOLDS))
        titles = pd.read_csv(trained_artifacts / "test.csv")["title"].astype(str).tolist()
        batch = trained_predictor.encode(titles)
        predicted = trained_predictor.probabilities(batch.ids).argmax(dim=1).tolist()
        presented = negative = 0
        for explanation in explainer.explain(batch, predicted):
            top = explanation.get("ngrams", {}).get("1", {})
            if top.get("ngram") is None:
                continue
            presented += 1
            negative += explanation["token_scores"][top["start"]] < 0
        assert presented > 0.9 * len(titles)
        assert negative / presented <= self.MAX_NEGATIVE_SHARE, (negative, presented)
