"""A training run's serving files with a tiny vocabulary and seeded random weights."""
from __future__ import annotations

import json
from pathlib import Path

TINY_LABELS = ["Business", "Sci/Tech", "Sports", "World"]
TINY_STOPWORDS = ["a", "the", "of", "in", "is", "next"]
TINY_WORDS = ["tennis", "tournament", "final", "starts", "week", "stocks", "market", "oil",
              "prices", "election", "president", "vote", "rocket", "space", "software",
              "league", "cup", "bank", "war", "talks"]
# Headlines of every kind for the tiny artifacts: answered, abstained on (no known word), and
# refused by the handler (empty; longer than max_chars).
MIXED_HEADLINES = ["The final tennis tournament starts next week.", "Oil prices and stocks market",
                   "President election vote", "zzz qqq", "", "Rocket space software talks",
                   "tennis " * 200, "Bank war talks in the league cup"]


def write_tiny_artifacts(directory: Path, seed: int = 0, version: str = "0.1.0") -> Path:
    """Write the files `Predictor.from_dir` and the archive read into `directory`: the tiny
    vocabulary (its last 4 words the frozen tail), the 4 AG News labels, weights seeded by
    `seed`, and a manifest with `version`."""
    import torch

    from model import artifacts
    from model.cnn import CNN
    from model.config import ModelConfig
    from model.encoders import PAD_TOKEN, UNK_TOKEN, LabelEncoder, Tokenizer
    from model.preprocess import Preprocessor

    directory.mkdir(parents=True, exist_ok=True)
    tokens = [PAD_TOKEN, UNK_TOKEN] + TINY_WORDS
    # The last 4 words play the frozen open-vocabulary tail.
    Tokenizer(tokens, num_trainable=len(tokens) - 4).save(directory / artifacts.TOKENIZER)
    LabelEncoder(TINY_LABELS).save(directory / artifacts.LABEL_ENCODER)
    Preprocessor(TINY_STOPWORDS).save(directory / artifacts.PREPROCESSOR)
    config = ModelConfig(vocab_size=len(tokens), num_classes=len(TINY_LABELS),
                         num_trainable=len(tokens) - 4, embedding_dim=8, num_filters=6,
                         hidden_dim=12)
    config.save(directory / artifacts.MODEL_CONFIG)
    torch.manual_seed(seed)
    model = CNN(config)
    with torch.no_grad():
        model.embeddings.frozen.normal_()
    torch.save(model.state_dict(), directory / artifacts.WEIGHTS)
    (directory / artifacts.MANIFEST).write_text(json.dumps({"version": version}))
    return directory
