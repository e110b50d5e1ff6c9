"""The experiments on one split: CNNs with different embedding initialisations, and a
TF-IDF + logistic-regression reference; plus the tables that compare them."""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from gensim.models import KeyedVectors
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from model.cnn import CNN
from model.config import ModelConfig
from model.encoders import LabelEncoder, Tokenizer
from training import config as names
from training.augment import make_augment, tail_neighbours
from training.behaviour import OFF_TOPIC_WORDS
from training.config import TrainConfig
from training.data import EVAL
from training.embeddings import embedding_matrix, open_vocabulary, train_fasttext, train_word2vec
from training.evaluate import classification_metrics
from training.parallel import run_forked
from training.timing import StepTimer
from training.train import History, Trainer, class_weights


@dataclass
class Prepared:
    """The split after preprocessing and encoding, shared by every experiment."""

    texts: dict[str, list[str]]  # "train" / "val" / "test" (/ "eval") -> preprocessed headlines
    y: dict[str, np.ndarray]  # same keys -> class indices
    labels: LabelEncoder
    tokenizer: Tokenizer  # the learned vocabulary (training split only, capped)
    stopwords: list[str]


@dataclass
class ExperimentResult:
    """What one experiment produced; CNN experiments also keep their model and tokenizer."""

    name: str
    metrics: dict
    seconds: float
    y_pred: np.ndarray
    history: History | None = None
    model: CNN | None = None
    tokenizer: Tokenizer | None = None
    embeddings: str = ""  # where the initial vectors came from
    # CNN experiments: class probabilities of the "val", "test" (and "eval") parts.
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)


def run_cnn(name: str, prepared: Prepared, config: TrainConfig, vectors: KeyedVectors | None,
            freeze: bool, device: torch.device, source: str,
            timer: StepTimer | None = None) -> ExperimentResult:
    """Train one CNN. With `vectors`, its embeddings start from them and the tokenizer gains
    a frozen tail of up to `max_pretrained_words` pretrained words it never saw in training."""
    start = time.perf_counter()
    timer = timer or StepTimer()
    tokenizer = prepared.tokenizer
    with timer.step(f"{name}/vocabulary"):
        if vectors is not None:
            tokenizer = open_vocabulary(vectors, tokenizer, prepared.stopwords, config.max_pretrained_words)
    model_config = ModelConfig(
        vocab_size=len(tokenizer), num_classes=len(prepared.labels),
        num_trainable=tokenizer.num_trainable,
        embedding_dim=vectors.vector_size if vectors is not None else config.embedding_dim,
        freeze_embeddings=freeze, dropout_p=config.dropout)
    torch.manual_seed(config.seed)  # each experiment reproducible on its own
    model = CNN(model_config)
    neighbours = None
    with timer.step(f"{name}/vocabulary"):
        if vectors is not None:
            matrix = embedding_matrix(tokenizer, vectors, config.seed)
            model.embeddings.load_vectors(matrix)
            if config.neighbour_swap > 0:
                neighbours = tail_neighbours(matrix, tokenizer.num_trainable)
    with timer.step(f"{name}/encode"):
        encoded = {part: tokenizer.encode_batch(texts) for part, texts in prepared.texts.items()}
    # The flip-rate words stay out of the topical pool, so that the measured flip rate is
    # robustness to words the augmentation never inserted.
    held_out = {tokenizer.token_to_index[w] for words in OFF_TOPIC_WORDS.values() for w in words
                if w in tokenizer.token_to_index}
    augment = make_augment(encoded["train"], dropout=config.word_dropout,
                           insertion=config.word_insertion, swap=config.neighbour_swap,
                           neighbours=neighbours, topical=config.topical_insertion,
                           train_labels=prepared.y["train"], num_classes=len(prepared.labels),
                           exclude=held_out)
    trainer = Trainer(model, class_weights(prepared.y["train"], len(prepared.labels)), config,
                      device=device, name=name, augment=augment)
    with timer.step(f"{name}/epochs"):
        history = trainer.fit((encoded["train"], prepared.y["train"]), (encoded["val"], prepared.y["val"]))
    with timer.step(f"{name}/test"):
        probabilities = {part: trainer.predict(encoded[part]) for part in encoded if part != "train"}
        y_pred = probabilities["test"].argmax(axis=1)
        metrics = _scored_metrics(prepared, {part: p.argmax(axis=1) for part, p in probabilities.items()})
    return ExperimentResult(name, metrics, time.perf_counter() - start, y_pred, history,
                            trainer.model.cpu().eval(), tokenizer, source, probabilities)


def _scored_metrics(prepared: Prepared, predicted: dict[str, np.ndarray]) -> dict:
    """Metrics of the test split (overall and per class) at the top level; overall metrics
    of the validation split, what choices between experiments rest on; and, with an
    evaluation set, its overall and per-class metrics under EVAL."""
    classes = prepared.labels.classes
    metrics = classification_metrics(prepared.y["test"], predicted["test"], classes)
    metrics["validation"] = classification_metrics(prepared.y["val"], predicted["val"], classes)["overall"]
    if EVAL in predicted:
        metrics[EVAL] = classification_metrics(prepared.y[EVAL], predicted[EVAL], classes)
    return metrics


def run_tfidf(prepared: Prepared, seed: int) -> ExperimentResult:
    """The reference: TF-IDF on word unigrams and bigrams, multinomial logistic regression."""
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(prepared.texts["train"])
    classifier = LogisticRegression(max_iter=1000, class_weight="balanced", random_state=seed)
    classifier.fit(features, prepared.y["train"])
    predicted = {part: classifier.predict(vectorizer.transform(texts))
                 for part, texts in prepared.texts.items() if part != "train"}
    return ExperimentResult(names.TFIDF, _scored_metrics(prepared, predicted),
                            time.perf_counter() - start, predicted["test"],
                            embeddings="tf-idf (1-2 grams)")


def run_experiments(prepared: Prepared, config: TrainConfig, pretrained: Callable[[], KeyedVectors],
                    device: torch.device, timer: StepTimer | None = None) -> dict[str, ExperimentResult]:
    """Run the experiments named in `config.experiments`, in the canonical order.

    On the CPU they run side by side in up to `config.threads` forked processes, each with
    `config.threads // processes` threads (one experiment alone gets them all). Each seeds
    itself, so its result does not depend on which others run or when.
    `pretrained` loads the pretrained vectors; it is called only if a GloVe experiment runs.
    `timer` collects each experiment's steps ("<name>/vectors", "<name>/epochs", ...).
    """
    timer = timer or StepTimer()
    chosen = [name for name in names.EXPERIMENTS if name in config.experiments]
    workers = min(config.threads, len(chosen)) if device.type == "cpu" else 1
    threads = max(1, config.threads // workers)
    jobs = {name: functools.partial(_run_one, name, prepared, config, pretrained, device, threads)
            for name in chosen}
    results: dict[str, ExperimentResult] = {}
    for name, (result, seconds) in run_forked(jobs, workers).items():
        results[name] = result
        timer.add(seconds)
    return results


def _run_one(name: str, prepared: Prepared, config: TrainConfig, pretrained: Callable[[], KeyedVectors],
             device: torch.device, threads: int) -> tuple[ExperimentResult, dict[str, float]]:
    """One experiment on `threads` CPU threads; its result and its steps' seconds."""
    torch.set_num_threads(threads)
    timer = StepTimer()
    print(f"[{name}]", flush=True)
    if name == names.TFIDF:
        with timer.step(f"{name}/fit"):
            result = run_tfidf(prepared, config.seed)
        return result, timer.seconds
    vectors, source = None, "random"
    with timer.step(f"{name}/vectors"):
        if name in (names.GLOVE_FROZEN, names.GLOVE_FINETUNED):
            vectors, source = pretrained(), config.embeddings
        elif name in (names.WORD2VEC, names.FASTTEXT):
            sentences = [t.split() for t in prepared.texts["train"]]
            options = dict(vector_size=config.embedding_dim, seed=config.seed, workers=threads)
            vectors = train_word2vec(sentences, **options) if name == names.WORD2VEC \
                else train_fasttext(sentences, **options).wv
            source = f"{name} (training headlines)"
    result = run_cnn(name, prepared, config, vectors=vectors, freeze=name == names.GLOVE_FROZEN,
                     device=device, source=source, timer=timer)
    return result, timer.seconds


_COLUMNS = ("experiment", "eval weighted F1", "val weighted F1", "test accuracy", "test precision",
            "test recall", "test weighted F1", "test macro F1", "best/epochs", "vocab", "seconds")
_EVAL_COLUMN = _COLUMNS.index("eval weighted F1")


def _rows(results: dict[str, ExperimentResult], archived: str) -> list[list[str]]:
    """A header and one row of formatted cells per experiment, for both tables; the
    evaluation-set column only when the experiments were scored on one."""
    rows = [list(_COLUMNS)]
    for name, r in results.items():
        o = r.metrics["overall"]
        epochs = f"{r.history.best_epoch}/{len(r.history.val_loss)}" if r.history else "-"
        vocab = (f"{r.tokenizer.num_trainable}+{len(r.tokenizer) - r.tokenizer.num_trainable}"
                 if r.tokenizer else "-")
        scored = r.metrics.get(EVAL)
        rows.append([name + (" (archived)" if name == archived else ""),
                     f"{scored['overall']['weighted_f1']:.4f}" if scored else "-",
                     f"{r.metrics['validation']['weighted_f1']:.4f}",
                     f"{o['accuracy']:.4f}", f"{o['weighted_precision']:.4f}",
                     f"{o['weighted_recall']:.4f}", f"{o['weighted_f1']:.4f}", f"{o['macro_f1']:.4f}",
                     epochs, vocab, f"{r.seconds:.1f}"])
    if not any(EVAL in r.metrics for r in results.values()):
        for row in rows:
            del row[_EVAL_COLUMN]
    return rows


def text_table(results: dict[str, ExperimentResult], archived: str) -> str:
    """A fixed-width table for the terminal (see pipeline.TABLE_CAPTION)."""
    rows = _rows(results, archived)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def markdown_table(results: dict[str, ExperimentResult], archived: str) -> str:
    """The same table in Markdown."""
    header, *rows = _rows(results, archived)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
