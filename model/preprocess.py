"""The one copy of the text preprocessing that training and serving both run.

It reproduces Made-With-ML's `preprocess` (Embeddings lesson) step by step, after folding
accents (so "Zürich" stays one word), so that the served model sees exactly the text it was
trained on. The stopword list is passed in (training reads it from NLTK and saves it next to
the weights) so serving never needs NLTK.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

_BRACKETED = re.compile(r"\([^)]*\)")
# Separate punctuation tied to words before the alphanumeric filter removes it.
_PUNCTUATION = re.compile(r"([-;;.,!?<=>])")
_NON_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]+")
_SPACES = re.compile(r" +")


def fold_accents(text: str) -> str:
    """Zürich -> Zurich, café -> cafe: NFKD splits a letter from its accents, which are dropped.

    Without it the alphanumeric filter cuts accented words into fragments ("z rich") that
    can collide with real vocabulary; NFKD also maps compatibility forms (ﬁ, full-width
    letters) to plain ones.
    """
    if text.isascii():  # most headlines: NFKD leaves ASCII as it is, and this is a third of the cost
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


class Preprocessor:
    """Fold accents, lower-case, drop stopwords, drop text in brackets, keep alphanumeric words."""

    def __init__(self, stopwords: Iterable[str], lower: bool = True) -> None:
        self.stopwords: list[str] = sorted(set(stopwords))
        self.lower = lower
        # One compiled alternation instead of one regex per word: this runs per request.
        self._stopword_pattern = (
            re.compile(r"\b(" + "|".join(re.escape(w) for w in self.stopwords) + r")\b\s*")
            if self.stopwords
            else None
        )

    def __call__(self, text: str) -> str:
        """Return the cleaned text: words separated by single spaces."""
        text = fold_accents(text)
        if self.lower:
            text = text.lower()
        if self._stopword_pattern is not None:
            text = self._stopword_pattern.sub("", text)
        text = _BRACKETED.sub("", text)
        text = _PUNCTUATION.sub(r" \1 ", text)
        text = _NON_ALPHANUMERIC.sub(" ", text)
        text = _SPACES.sub(" ", text)
        return text.strip()

    def batch(self, texts: Sequence[str]) -> list[str]:
        """Preprocess several texts."""
        return [self(t) for t in texts]

    def save(self, path: str | Path) -> None:
        """Write the stopword list as JSON, so serving can rebuild this preprocessor."""
        Path(path).write_text(json.dumps({"lower": self.lower, "stopwords": self.stopwords}, indent=0))

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        """Rebuild the preprocessor saved by `save`."""
        data = json.loads(Path(path).read_text())
        return cls(data["stopwords"], lower=data.get("lower", True))
