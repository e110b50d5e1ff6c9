"""Tiny headline data and word vectors that the training tests write themselves."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np

# Words that signal each class, so that even a few epochs learn something.
CLASS_WORDS = {
    "Business": ["stocks", "market", "oil", "prices", "bank", "profit", "shares", "deal"],
    "Sci/Tech": ["software", "space", "rocket", "internet", "computer", "chip", "web", "phone"],
    "Sports": ["tennis", "league", "cup", "coach", "match", "goal", "season", "team"],
    "World": ["election", "president", "war", "talks", "troops", "minister", "vote", "peace"],
}
STOPWORDS = ["a", "the", "of", "in", "for", "is", "to", "on"]
# Pretrained-looking words that never appear in the headlines (the open-vocabulary tail).
EXTRA_WORDS = ["nasdaq", "satellite", "stadium", "embassy", "the", "e-mail", "U.S."]


def headlines(rows_per_class: int = 15, seed: int = 0) -> list[tuple[str, str]]:
    """(title, category) pairs: three class words plus filler, in a fixed random order."""
    rng = random.Random(seed)
    rows = []
    for category, words in CLASS_WORDS.items():
        for _ in range(rows_per_class):
            title = " ".join(rng.sample(words, 3)).title() + " in the " + rng.choice(["news", "week"])
            rows.append((title, category))
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows_per_class: int = 15, seed: int = 0) -> Path:
    """A seed-schema CSV (header title,category)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["title", "category"])
        writer.writerows(headlines(rows_per_class, seed))
    return path


def write_glove(path: Path, dim: int = 8, seed: int = 0) -> Path:
    """A GloVe-format text file (no header) covering the class words and a few extra words."""
    rng = np.random.default_rng(seed)
    words = [w for ws in CLASS_WORDS.values() for w in ws] + ["news", "week"] + EXTRA_WORDS
    with open(path, "w", encoding="utf-8") as f:
        for word in words:
            f.write(word + " " + " ".join(f"{v:.5f}" for v in rng.normal(size=dim)) + "\n")
    return path
