"""The in-process predictor on tiny artifacts: abstention on headlines with no known word, and
the calibrated probabilities it serves (see training/calibration.py)."""
from __future__ import annotations

import shutil

import pytest
import torch

from model import artifacts
from model.config import ModelConfig
from model.predictor import MAX_TOKENS, NO_KNOWN_WORDS, EncodedBatch, Predictor, row_chunks


@pytest.fixture(scope="module")
def predictor(tiny_artifacts) -> Predictor:
    return Predictor.from_dir(tiny_artifacts)


# Tiny vocabulary: learned words, "war"/"talks"/"bank"/"cup" the frozen tail; stopwords
# "a", "the", "of", "in", "is", "next" (tests/helpers/tiny_artifacts.py).
NO_KNOWN_WORD = {
    "all unknown": ("zzz qqq", 2, 2),
    "stopwords only": ("The next of a", 0, 0),
    "empty after preprocessing": ("(Reuters) !!! -- ???", 0, 0),
    "non-Latin script": ("东京股市", 0, 0),
}


@pytest.mark.parametrize("text, num_tokens, unknown", NO_KNOWN_WORD.values(), ids=list(NO_KNOWN_WORD))
def test_a_headline_without_a_known_word_abstains(predictor, text, num_tokens, unknown):
    (answer,) = predictor.predict([text])
    assert answer == {"label": None, "probabilities": None, "num_tokens": num_tokens,
                      "unknown_tokens": unknown, "abstained": NO_KNOWN_WORDS}


def test_in_a_mixed_batch_only_the_unreadable_abstain_and_the_others_answer_as_alone(predictor):
    readable = ["oil prices rise", "zzz tennis qqq", "war talks"]  # the last: frozen-tail words
    texts = [readable[0], "zzz qqq", readable[1], "the of", readable[2]]
    answers = predictor.predict(texts)
    assert [a["abstained"] for a in answers] == [None, NO_KNOWN_WORDS, None, NO_KNOWN_WORDS, None]
    for text, answer in zip(readable, answers[::2], strict=True):
        assert answer == predictor.predict([text])[0]
    assert answers[2]["unknown_tokens"] == 2 and answers[2]["num_tokens"] == 3


def test_abstentions_are_read_from_the_encoded_batch(predictor):
    batch = predictor.encode(["oil", "zzz", "", "tennis zzz"])
    assert batch.abstentions() == [None, NO_KNOWN_WORDS, NO_KNOWN_WORDS, None]
    hand_made = EncodedBatch(ids=torch.zeros(2, 3, dtype=torch.long), tokens=[["a", "b"], ["c"]],
                             unknown=[1, 1])
    assert hand_made.abstentions() == [None, NO_KNOWN_WORDS]

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
    # A temperature above 1 flattens: the top probability drops for every headline.
    assert (hot.probabilities(ids).amax(dim=1) < plain.probabilities(ids).amax(dim=1)).all()


def test_non_positive_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        ModelConfig(vocab_size=10, num_classes=4, temperature=0.0)


# -- bounded work per request ------------------------------------------------------------------
def test_a_headline_keeps_its_first_max_tokens_words(predictor):
    """Accent folding turns each "¼" into a word ("1⁄4" -> "1 4"): 1,000 characters would be
    1,001 words. Only the first MAX_TOKENS reach the model, and what comes after them cannot
    change the answer."""
    long_words = "tennis " * MAX_TOKENS
    batch = predictor.encode(["¼" * 1000, long_words + "oil " * 200, long_words])
    assert [len(t) for t in batch.tokens] == [MAX_TOKENS] * 3
    assert batch.ids.shape[1] == MAX_TOKENS
    capped, alone = predictor.predict([long_words + "oil " * 200, long_words])
    assert capped == alone and capped["num_tokens"] == MAX_TOKENS


def test_row_chunks_cover_every_row_in_order_within_the_bound():
    ids = torch.zeros(9, 20, dtype=torch.long)
    lengths = [1, 20, 3, 3, 3, 0, 12, 2, 5]
    for row, length in enumerate(lengths):
        ids[row, :length] = 7
    chunks = list(row_chunks(ids, max_cells=24, min_width=3))
    assert [r for part, _ in chunks for r in range(9)[part]] == list(range(9))
    for part, chunk in chunks:
        widths = [max(3, n) for n in lengths[part]]
        assert chunk.shape == (len(widths), max(widths))  # trimmed to its own longest row
        assert torch.equal(chunk, ids[part, :chunk.shape[1]])
        assert chunk.numel() <= 24 or len(widths) == 1  # a row wider than the bound goes alone


def test_forward_passes_are_bounded_and_change_no_probability(predictor, monkeypatch):
    import model.predictor as predictor_module

    texts = ["tennis final " * n + "oil" for n in range(1, 30)]
    ids = predictor.encode(texts).ids
    whole = predictor.probabilities(ids)
    seen = []
    forward = predictor.model.forward
    monkeypatch.setattr(predictor.model, "forward", lambda x: seen.append(x.numel()) or forward(x))
    monkeypatch.setattr(predictor_module, "MAX_FORWARD_CELLS", 64)
    chunked = predictor.probabilities(ids)
    assert len(seen) > 1 and max(seen) <= 64
    assert torch.allclose(whole, chunked, atol=1e-6)
