"""Label encoder and word tokenizer, fitted on the training split and stored as JSON."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

PAD_TOKEN = "<PAD>"
UNK_TOKEN = "<UNK>"
PAD_INDEX = 0
UNK_INDEX = 1


class LabelEncoder:
    """Maps class names to contiguous indices (sorted, so the order is reproducible)."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes: list[str] = list(classes)
        self.class_to_index = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def fit(cls, labels: Iterable[str]) -> LabelEncoder:
        """Learn the classes present in `labels`."""
        return cls(sorted(set(labels)))

    def __len__(self) -> int:
        return len(self.classes)

    def encode(self, labels: Iterable[str]) -> np.ndarray:
        """Class names to indices; an unseen class raises KeyError naming it."""
        return np.array([self.class_to_index[label] for label in labels], dtype=np.int64)

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Indices to class names."""
        return [self.classes[int(i)] for i in indices]

    def save(self, path: str | Path) -> None:
        """Write the classes as JSON."""
        Path(path).write_text(json.dumps({"classes": self.classes}, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> LabelEncoder:
        """Read classes written by `save`."""
        return cls(json.loads(Path(path).read_text())["classes"])


class Tokenizer:
    """Word-level tokenizer: PAD=0, UNK=1, then words.

    The first `num_trainable` indices are the training vocabulary (their embeddings are
    learned). Indices past that are "open vocabulary" words added from pretrained vectors
    so that a served headline's words that the training split never had do not collapse
    to UNK; the model keeps their vectors frozen.
    """

    def __init__(self, tokens: Sequence[str], num_trainable: int | None = None) -> None:
        if list(tokens[:2]) != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError(f"vocabulary must start with {PAD_TOKEN}, {UNK_TOKEN}")
        self.index_to_token: list[str] = list(tokens)
        self.token_to_index = {t: i for i, t in enumerate(self.index_to_token)}
        if len(self.token_to_index) != len(self.index_to_token):
            raise ValueError("vocabulary has duplicate tokens")
        self.num_trainable = len(tokens) if num_trainable is None else num_trainable

    @classmethod
    def fit(cls, texts: Iterable[str], num_tokens: int | None = None) -> Tokenizer:
        """Keep the most frequent words of preprocessed `texts` (ties broken alphabetically).

        `num_tokens` caps the vocabulary including PAD and UNK, as in the seed (Made-With-ML's
        "Embeddings" lesson, README.md).
        """
        counts = Counter(word for text in texts for word in text.split())
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if num_tokens is not None:
            ranked = ranked[: max(num_tokens - 2, 0)]
        return cls([PAD_TOKEN, UNK_TOKEN] + [w for w, _ in ranked])

    def extend(self, words: Iterable[str], max_size: int | None = None) -> Tokenizer:
        """Return a tokenizer with `words` (not already known) appended as frozen tokens."""
        tokens = list(self.index_to_token)
        known = set(tokens)
        for word in words:
            if max_size is not None and len(tokens) >= max_size:
                break
            if word not in known:
                tokens.append(word)
                known.add(word)
        return Tokenizer(tokens, num_trainable=self.num_trainable)

    def __len__(self) -> int:
        return len(self.index_to_token)

    def encode(self, text: str) -> list[int]:
        """A preprocessed text to token indices."""
        return [self.token_to_index.get(word, UNK_INDEX) for word in text.split()]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Several preprocessed texts to token indices."""
        return [self.encode(t) for t in texts]

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Token indices back to words (PAD dropped)."""
        return [self.index_to_token[i] for i in indices if i != PAD_INDEX]

    def save(self, path: str | Path) -> None:
        """Write the vocabulary (in index order) as JSON."""
        Path(path).write_text(
            json.dumps({"num_trainable": self.num_trainable, "tokens": self.index_to_token})
        )

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a vocabulary written by `save`."""
        data = json.loads(Path(path).read_text())
        return cls(data["tokens"], num_trainable=data["num_trainable"])


def pad_sequences(sequences: Sequence[Sequence[int]], min_length: int = 1) -> np.ndarray:
    """Right-pad with PAD to the longest sequence, and never shorter than `min_length`.

    `min_length` is the widest convolution filter: a shorter input would leave that
    filter with no complete window.
    """
    length = max([min_length] + [len(s) for s in sequences])
    padded = np.full((len(sequences), length), PAD_INDEX, dtype=np.int64)
    for row, seq in enumerate(sequences):
        padded[row, : len(seq)] = seq
    return padded
