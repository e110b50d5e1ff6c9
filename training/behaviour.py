"""The one-word flip rate: how often a single appended off-topic word changes a label.

Definition (computed at training on the test split, saved in metrics.json): take the test
headlines the model classifies correctly; to each, append (after a space) each word of
OFF_TOPIC_WORDS of every other class, one word at a time; the flip rate is the share of
these (headline, word) pairs whose predicted label differs from the unmodified headline's.
The word list is fixed here and never used in training.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.predictor import Predictor

# Five common, unambiguous topical words per class (all in GloVe's vocabulary, none a
# stopword), in the spirit of appending "... NASA" to a headline of another class.
OFF_TOPIC_WORDS = {
    "World": ("parliament", "ceasefire", "refugees", "embassy", "rebels"),
    "Sports": ("quarterback", "playoffs", "tennis", "olympics", "striker"),
    "Business": ("shares", "earnings", "inflation", "merger", "investors"),
    "Sci/Tech": ("nasa", "software", "internet", "microsoft", "genome"),
}


# Headlines per forward pass: 20 edits of every correct test headline of a large data set in
# one batch would hold all their feature maps at once (gigabytes at 120,000 rows).
CHUNK = 2048


def predicted_classes(predictor: Predictor, texts: Sequence[str]) -> np.ndarray:
    """The model's class index for each raw headline."""
    texts = list(texts)
    parts = [predictor.probabilities(predictor.encode(texts[start:start + CHUNK]).ids).argmax(dim=1).numpy()
             for start in range(0, len(texts), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def flip_rate(predictor: Predictor, texts: Sequence[str], labels: np.ndarray,
              words: dict[str, Sequence[str]] = OFF_TOPIC_WORDS) -> dict:
    """The one-word flip rate (module docstring) of `texts` with true class indices `labels`."""
    classes = predictor.labels.classes
    before = predicted_classes(predictor, texts)
    correct = [i for i in range(len(texts)) if before[i] == labels[i]]
    edited, original = [], []
    for i in correct:
        for name, extra in words.items():
            if name in classes and classes.index(name) != labels[i]:
                edited += [f"{texts[i]} {word}" for word in extra]
                original += [before[i]] * len(extra)
    after = predicted_classes(predictor, edited) if edited else np.zeros(0, dtype=np.int64)
    flips = int((after != np.asarray(original, dtype=np.int64)).sum())
    return {"flip_rate": round(flips / max(len(edited), 1), 4), "flips": flips,
            "pairs": len(edited), "headlines": len(correct),
            "words_per_class": {k: list(v) for k, v in words.items()}}
