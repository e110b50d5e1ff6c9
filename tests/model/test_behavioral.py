"""Behavioural tier on the trained model (Ribeiro et al. 2020, CheckList; Made-With-ML's
tests/model/test_behavioral.py): minimum functionality, invariance, directional.

Runs on the `trained_artifacts` fixture (a real training run of the archived recipe on
$DATA); skipped without DATA. Thresholds sit below the figures measured on the archived
recipe, with the margin stated next to each.
"""
import pytest

from model.explain import Explainer
from model.predictor import NO_KNOWN_WORDS, Predictor
from training.behaviour import OFF_TOPIC_WORDS

# Hand-written, unambiguous headlines in the style of recent news (none is in news.csv).
MINIMUM_FUNCTIONALITY = {
    "World": [
        "UN Security Council meets as ceasefire talks collapse in Gaza",
        "Ukraine and Russia exchange prisoners after weeks of negotiations",
        "Earthquake in Afghanistan kills hundreds, villages flattened",
        "Iran's president warns Israel after missile strikes on Tehran",
        "Thousands flee as rebels advance on the capital of Sudan",
        "European leaders gather in Brussels for emergency summit on migrants",
        "North Korea fires ballistic missile over Japan, Seoul says",
        "Opposition leader arrested in Venezuela ahead of presidential election",
        "Hostages freed as Hamas and Israel agree to truce",
        "Pakistan prime minister survives no-confidence vote in parliament",
        "China and Taiwan trade accusations over military drills in the strait",
        "Peace talks between Ethiopia and Tigray rebels resume in Kenya",
    ],
    "Sports": [
        "Real Madrid beat Barcelona 3-1 in El Clasico",
        "Djokovic wins record 24th Grand Slam title at US Open",
        "Lakers rally late to beat Celtics in overtime thriller",
        "Chiefs quarterback Mahomes throws three touchdowns in playoff win",
        "Verstappen takes pole position for the Monaco Grand Prix",
        "Manchester City sign Norwegian striker on five-year contract",
        "Yankees slugger hits two homers as New York sweeps Red Sox",
        "Australia win the Ashes after dramatic final day at the Oval",
        "Tiger Woods withdraws from the Masters with ankle injury",
        "Olympic champion sets new world record in 100m freestyle",
        "Coach fired after team's seventh straight defeat in the league",
        "Messi scores twice as Inter Miami reach the cup final",
    ],
    "Business": [
        "Oil prices climb as OPEC agrees to cut production",
        "Wall Street stocks fall as Fed signals more rate hikes",
        "Boeing shares slide after quarterly loss widens",
        "Inflation eases to 3 percent, giving central bank room to pause",
        "Walmart raises profit forecast as shoppers seek bargains",
        "Pfizer to buy biotech firm in 43 billion dollar deal",
        "Retail sales rise more than economists expected in March",
        "Airline posts record quarterly earnings on strong travel demand",
        "Dollar weakens against euro as US jobless claims jump",
        "Bank of England raises interest rates to highest level since 2008",
        "Toyota recalls one million cars, shares drop in Tokyo trading",
        "Mortgage rates hit 7 percent, home sales slump",
    ],
    "Sci/Tech": [
        "NASA rover finds signs of ancient water on Mars",
        "Apple unveils new iPhone with faster chip and better camera",
        "Microsoft releases security patch for Windows zero-day flaw",
        "Google launches AI chatbot to rival ChatGPT",
        "SpaceX rocket carries astronauts to the International Space Station",
        "Hackers steal data of millions of users in software breach",
        "Scientists sequence genome of extinct woolly mammoth",
        "New smartphone chips promise longer battery life",
        "Linux developers release new kernel with faster file system",
        "Researchers build quantum computer that beats supercomputers",
        "Telescope spots distant galaxy formed soon after the Big Bang",
        "Intel unveils processors for laptops and data centers",
    ],
}
ALL = [(text, label) for label, texts in MINIMUM_FUNCTIONALITY.items() for text in texts]


@pytest.fixture(scope="module")
def predictor(trained_artifacts) -> Predictor:
    return Predictor.from_dir(trained_artifacts)


def labels(predictor: Predictor, texts: list[str]) -> list[str]:
    return [a["label"] for a in predictor.predict(texts)]


# --- minimum functionality ---------------------------------------------------------------
def test_minimum_functionality(predictor):
    predicted = labels(predictor, [t for t, _ in ALL])
    wrong = [(t, want, got) for (t, want), got in zip(ALL, predicted, strict=True) if got != want]
    # The bar: at least 90 % right. Measured: 48 of 48 right with seeds 1234, 1 and 2 of the
    # archived recipe, so 5 wrong answers are well outside run-to-run noise.
    assert len(wrong) <= 0.10 * len(ALL), wrong


# --- invariance ------------------------------------------------------------------------------
# These edits are erased by preprocessing (lower-casing, punctuation, bracketed text): the
# model sees the very same tokens, so they test the preprocessor as served, not the model.
PREPROCESSING_EDITS = {
    "lower case": str.lower,
    "upper case": str.upper,
    "trailing full stop": lambda t: t + ".",
    "trailing question mark": lambda t: t + "?",
    "(Reuters) tag": lambda t: t + " (Reuters)",
    "(AP) tag": lambda t: "(AP) " + t,
}
# These add a topic-neutral word the model does read: they test the model itself.
MODEL_EDITS = {
    "Update: prefix": lambda t: "Update: " + t,
    "Report: prefix": lambda t: "Report: " + t,
    "Breaking: prefix": lambda t: "Breaking: " + t,
    "Exclusive: prefix": lambda t: "Exclusive: " + t,
    "Analysis: prefix": lambda t: "Analysis: " + t,
    "News: prefix": lambda t: "News: " + t,
    "- report suffix": lambda t: t + " - report",
    ", officials say suffix": lambda t: t + ", officials say",
    ", he says suffix": lambda t: t + ", he says",
    "today suffix": lambda t: t + " today",
    "this week suffix": lambda t: t + " this week",
}
# Measured for each model edit with seeds 1234, 1 and 2 of the archived recipe: 0 of 48
# labels changed, and the mean |change| of the unedited label's probability at most 0.024
# ("Exclusive:", seed 1). Bounds: 2 of 48 labels, a mean shift of 0.05 (about twice the
# highest measured).
MAX_MODEL_EDIT_FLIPS = 2
MAX_MODEL_EDIT_MEAN_SHIFT = 0.05


@pytest.mark.parametrize("edit", list(PREPROCESSING_EDITS))
def test_invariance_to_what_preprocessing_erases(predictor, edit):
    texts = [t for t, _ in ALL]
    before = labels(predictor, texts)
    after = labels(predictor, [PREPROCESSING_EDITS[edit](t) for t in texts])
    changed = [(t, b, a) for t, b, a in zip(texts, before, after, strict=True) if a != b]
    assert not changed, changed


@pytest.mark.parametrize("edit", list(MODEL_EDITS))
def test_invariance_to_a_neutral_word(predictor, edit):
    texts = [t for t, _ in ALL]
    before = predictor.predict(texts)
    after = predictor.predict([MODEL_EDITS[edit](t) for t in texts])
    changed = [(t, b["label"], a["label"]) for t, b, a in zip(texts, before, after, strict=True)
               if a["label"] != b["label"]]
    assert len(changed) <= MAX_MODEL_EDIT_FLIPS, changed
    shift = sum(abs(a["probabilities"][b["label"]] - b["probabilities"][b["label"]])
                for b, a in zip(before, after, strict=True)) / len(texts)
    assert shift <= MAX_MODEL_EDIT_MEAN_SHIFT, f"mean probability shift {shift:.3f}"


# --- directional ------------------------------------------------------------------------
def test_one_off_topic_word_flips_few_labels(predictor):
    texts, originals = [], []
    predicted = labels(predictor, [t for t, _ in ALL])
    for (text, label), got in zip(ALL, predicted, strict=True):
        if got != label:
            continue
        for other, words in OFF_TOPIC_WORDS.items():
            if other != label:
                texts += [f"{text} {w}" for w in words]
                originals += [label] * len(words)
    after = labels(predictor, texts)
    flipped = sum(a != o for a, o in zip(after, originals, strict=True))
    share = flipped / len(texts)
    # Measured on these headlines: 0.7 %, 1.8 % and 2.5 % (5, 13, 18 of 720) with seeds
    # 1234, 1 and 2 of the archived recipe: mean 1.7 %, sample std 0.9 %; the bound is
    # mean + 3 std (4.4 %), rounded up. These headlines carry several topical words each: the
    # test-split and canonical_dev rates in metrics.json are the harder figures.
    assert share <= 0.05, f"{flipped} of {len(texts)} labels flipped ({share:.1%})"


# --- Abstention: nothing to read, no label ------------------------------------------------
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

    def test_unreadable_headlines_abstain_and_readable_neighbours_are_answered(self, predictor):
        texts = [self.READABLE[0], *self.UNREADABLE.values(), self.READABLE[1]]
        answers = predictor.predict(texts)
        for name, answer in zip(self.UNREADABLE, answers[1:-1], strict=True):
            assert answer["abstained"] == NO_KNOWN_WORDS, (name, answer)
            assert answer["label"] is None and answer["probabilities"] is None, name
        assert answers[0] == predictor.predict(self.READABLE[:1])[0]
        assert answers[-1] == predictor.predict(self.READABLE[1:])[0]
        assert answers[0]["abstained"] is None and answers[-1]["abstained"] is None

    def test_one_known_word_is_enough_to_answer(self, predictor):
        answer = predictor.predict(["东京股市 stocks 🚀"])[0]
        assert answer["abstained"] is None and answer["num_tokens"] == 1

    def test_explanations_of_unreadable_headlines_abstain_too(self, predictor):
        explainer = Explainer(predictor.model, predictor.labels)
        texts = [self.READABLE[0], self.UNREADABLE["emoji only"]]
        batch = predictor.encode(texts)
        readable, unreadable = explainer.explain(batch, [0, 0])
        assert unreadable == {"tokens": [], "explained_class": None, "abstained": NO_KNOWN_WORDS}
        assert len(readable["token_scores"]) == len(readable["tokens"]) > 0
