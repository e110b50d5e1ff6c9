"""Token-level augmentation of training headlines, drawn afresh every epoch.

Both make the CNN lean on more than one word of a headline: its global max-pool lets a
single strong word decide the class, which is what flips a label when one off-topic word is
appended (see training/behaviour.py).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from model.encoders import UNK_INDEX

# (token id sequences, their class indices, generator) -> augmented sequences.
Augment = Callable[[Sequence[Sequence[int]], np.ndarray, np.random.Generator], list[list[int]]]
# Words that make up at least this share of a word's training occurrences in one class
# (and occur at least MIN_TOPICAL_COUNT times) are that class's topical words.
TOPICAL_PURITY = 0.8
MIN_TOPICAL_COUNT = 5


def word_dropout(sequences: Sequence[Sequence[int]], rate: float,
                 rng: np.random.Generator) -> list[list[int]]:
    """Replace each token by UNK with probability `rate` (lengths and positions unchanged)."""
    out = []
    for seq in sequences:
        ids = np.asarray(seq, dtype=np.int64)
        ids = np.where(rng.random(len(ids)) < rate, UNK_INDEX, ids)
        out.append(ids.tolist())
    return out


def word_insertion(sequences: Sequence[Sequence[int]], rate: float, pool: np.ndarray,
                   rng: np.random.Generator) -> list[list[int]]:
    """With probability `rate`, insert one token drawn from `pool` at a random position of a
    headline, keeping its label: the pool is every token occurrence of the training split, so
    words come at their training frequency, from any class."""
    out = []
    for seq in sequences:
        seq = list(seq)
        if len(pool) and rng.random() < rate:
            seq.insert(int(rng.integers(len(seq) + 1)), int(pool[rng.integers(len(pool))]))
        out.append(seq)
    return out


def topical_words(sequences: Sequence[Sequence[int]], labels: np.ndarray, num_classes: int,
                  exclude: set[int]) -> list[np.ndarray]:
    """Per class, its topical words' ids (see TOPICAL_PURITY), one entry per training
    occurrence so that they are drawn at their frequency; ids in `exclude` left out."""
    counts: dict[int, np.ndarray] = {}
    for seq, label in zip(sequences, labels, strict=True):
        for token in seq:
            counts.setdefault(token, np.zeros(num_classes, dtype=np.int64))[label] += 1
    pools: list[list[int]] = [[] for _ in range(num_classes)]
    for token, per_class in counts.items():
        total = per_class.sum()
        if token == UNK_INDEX or token in exclude or total < MIN_TOPICAL_COUNT:
            continue
        if per_class.max() >= TOPICAL_PURITY * total:
            pools[int(per_class.argmax())] += [token] * int(total)
    return [np.asarray(p, dtype=np.int64) for p in pools]


def topical_insertion(sequences: Sequence[Sequence[int]], labels: np.ndarray, rate: float,
                      pools: list[np.ndarray], rng: np.random.Generator) -> list[list[int]]:
    """With probability `rate`, insert at a random position one topical word of another
    class (chosen uniformly among the classes that have topical words), keeping the label:
    one foreign word must not outweigh the rest of the headline."""
    out = []
    for seq, label in zip(sequences, labels, strict=True):
        seq = list(seq)
        others = [c for c, pool in enumerate(pools) if c != label and len(pool)]
        if others and rng.random() < rate:
            pool = pools[others[rng.integers(len(others))]]
            seq.insert(int(rng.integers(len(seq) + 1)), int(pool[rng.integers(len(pool))]))
        out.append(seq)
    return out


def neighbour_swap(sequences: Sequence[Sequence[int]], rate: float, neighbours: np.ndarray,
                   rng: np.random.Generator) -> list[list[int]]:
    """Replace each token by `neighbours[token]` with probability `rate`.

    `neighbours` maps a learned word to its nearest pretrained word of the frozen tail (or to
    itself): the layers after the embeddings then also learn from frozen vectors, which is
    all a served headline's words unseen in training have.
    """
    out = []
    for seq in sequences:
        ids = np.asarray(seq, dtype=np.int64)
        ids = np.where(rng.random(len(ids)) < rate, neighbours[ids], ids)
        out.append(ids.tolist())
    return out


def tail_neighbours(matrix: np.ndarray, num_trainable: int) -> np.ndarray:
    """For every index, the frozen-tail index whose vector is closest in cosine to its own
    row of the initial embedding `matrix`; tail indices (and PAD, UNK) map to themselves."""
    neighbours = np.arange(len(matrix))
    tail = matrix[num_trainable:]
    if len(tail) == 0:
        return neighbours
    unit = tail / np.maximum(np.linalg.norm(tail, axis=1, keepdims=True), 1e-8)
    learned = matrix[2:num_trainable]  # PAD and UNK keep themselves
    learned = learned / np.maximum(np.linalg.norm(learned, axis=1, keepdims=True), 1e-8)
    for start in range(0, len(learned), 1024):  # bounded memory: 1024 x tail similarities
        nearest = (learned[start:start + 1024] @ unit.T).argmax(axis=1)
        neighbours[2 + start:2 + start + len(nearest)] = num_trainable + nearest
    return neighbours


def make_augment(train_sequences: Sequence[Sequence[int]], dropout: float = 0.0, insertion: float = 0.0,
                 swap: float = 0.0, neighbours: np.ndarray | None = None, topical: float = 0.0,
                 train_labels: np.ndarray | None = None, num_classes: int = 0,
                 exclude: set[int] | None = None) -> Augment | None:
    """The augmentation a training run asked for (insertions, then neighbour swap, then
    dropout), or None when every rate is 0. Topical insertion needs the training labels."""
    topical = topical if train_labels is not None else 0.0
    if dropout <= 0 and insertion <= 0 and topical <= 0 and (swap <= 0 or neighbours is None):
        return None
    pool = np.fromiter((i for seq in train_sequences for i in seq if i != UNK_INDEX), dtype=np.int64)
    pools = (topical_words(train_sequences, train_labels, num_classes, exclude or set())
             if topical > 0 else [])

    def augment(sequences: Sequence[Sequence[int]], labels: np.ndarray,
                rng: np.random.Generator) -> list[list[int]]:
        out = [list(s) for s in sequences]
        if insertion > 0:
            out = word_insertion(out, insertion, pool, rng)
        if topical > 0:
            out = topical_insertion(out, labels, topical, pools, rng)
        if swap > 0 and neighbours is not None:
            out = neighbour_swap(out, swap, neighbours, rng)
        if dropout > 0:
            out = word_dropout(out, dropout, rng)
        return out

    return augment
