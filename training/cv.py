"""Stratified k-fold cross-validation of one training recipe (`python -m training --cv 5`).

The folds cover the development rows only: the train and validation parts of the usual
70/15/15 split (same seed), so the held-out test split is never seen. Each fold is scored
on its held-out fifth; the remaining rows are split again (stratified, 70:15 as in a
training run) into training rows and the validation rows that choose the epoch.
Results go to cv.json (one entry per recipe, kept across runs) and cv.md in the
artifact directory.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split

from model.predictor import Predictor
from model.preprocess import Preprocessor
from training.behaviour import flip_rate
from training.config import TrainConfig
from training.data import (
    CATEGORY,
    EVAL,
    TRAIN_SHARE,
    VAL_SHARE,
    Split,
    blocked_folds,
    check_stratifiable,
    load_headlines,
    read_eval_set,
    sample,
    split,
)
from training.embeddings import load_pretrained
from training.errors import ConfigError
from training.experiments import run_experiments
from training.pipeline import CV_JSON, CV_TABLE, prepare
from training.stopwords import english_stopwords
from training.train import pick_device

# The options that make a recipe, with the values of Made-With-ML's Embeddings lesson (the
# recipe this project started from): a recipe is named by how it differs.
LESSON_RECIPE = {"epochs": 10, "patience": 3, "lr": 1e-3, "embedding_lr": 1e-2, "batch_size": 64,
                 "vocab_size": 5000, "max_pretrained_words": 100_000, "dropout": 0.1, "word_dropout": 0.0,
                 "word_insertion": 0.0, "topical_insertion": 0.0, "neighbour_swap": 0.0,
                 "label_smoothing": 0.0, "weight_decay": 0.0, "adversarial": 0.0, "split_block": 0}


def recipe_name(config: TrainConfig) -> str:
    """The archived experiment and the options that differ from the lesson's recipe."""
    changed = [f"{k}={getattr(config, k)}" for k, v in LESSON_RECIPE.items() if getattr(config, k) != v]
    return config.archive + (" " + " ".join(changed) if changed else " (lesson recipe)")


def fold_splits(development, folds: int, seed: int, block: int = 0) -> list[Split]:
    """For each fold: training and validation rows from the other folds, the fold as `test`.
    With `block` > 0, folds and the validation rows within a fold's rest are whole runs of
    `block` consecutive development rows (see training.data.split)."""
    labels = np.asarray(development[CATEGORY], dtype=object)
    if block > 0:
        held_outs = blocked_folds(labels, folds, block, seed)
        everything = np.arange(len(labels))
        pairs = [(np.setdiff1d(everything, held_out), held_out) for held_out in held_outs]
    else:
        pairs = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(
            np.zeros(len(labels)), labels)
    result = []
    for rest, held_out in pairs:
        if block > 0:
            # 70:15 as in a training run: 14 of 17 blocked folds of the rest train.
            parts = blocked_folds(labels[rest], 17, block, seed)
            train_idx, val_idx = rest[np.concatenate(parts[:14])], rest[np.concatenate(parts[14:])]
        else:
            train_idx, val_idx = train_test_split(rest, test_size=VAL_SHARE / (TRAIN_SHARE + VAL_SHARE),
                                                  random_state=seed, stratify=labels[rest])

        def part(idx):
            return development.iloc[np.sort(idx)].reset_index(drop=True)

        result.append(Split(train=part(train_idx), val=part(val_idx), test=part(held_out)))
    return result


def _summary(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof=1) over folds, and the per-fold values."""
    return {"mean": round(float(np.mean(values)), 4),
            "std": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4),
            "folds": [round(v, 4) for v in values]}


def cross_validate(config: TrainConfig) -> dict:
    """Run k-fold CV of `config`'s archived recipe; save and return its entry in cv.json."""
    config.validate()
    torch.set_num_threads(config.threads)
    start = time.perf_counter()
    headlines = load_headlines(config.data, config.cache_dir)
    frame = sample(headlines.frame, config.max_rows, config.seed)
    check_stratifiable(frame, headlines.path)
    evaluation = read_eval_set(config.eval_data, frame) if config.eval_data else None
    parts = split(frame, config.seed, config.split_block)
    development = pd.concat([parts.train, parts.val], ignore_index=True)
    smallest = development[CATEGORY].value_counts().min()
    if smallest < config.cv:
        raise ConfigError(f"--cv {config.cv}: a class has only {smallest} development rows, fewer "
                          f"than the folds; use fewer folds or more data")
    name = recipe_name(config)
    print(f"{config.cv}-fold CV of {name} on {len(development)} development rows "
          f"(the {len(parts.test)}-row test split held out)")
    preprocessor = Preprocessor(english_stopwords())
    pretrained = functools.cache(lambda: load_pretrained(config.embeddings, config.trust_gensim_data))
    one = dataclasses.replace(config, experiments=[config.archive])
    f1, flips, eval_f1 = [], [], []
    for i, fold in enumerate(fold_splits(development, config.cv, config.seed, config.split_block),
                           start=1):
        prepared = prepare(fold, preprocessor, config.vocab_size, evaluation)
        result = run_experiments(prepared, one, pretrained, pick_device(config.device))[config.archive]
        predictor = Predictor(preprocessor, result.tokenizer, prepared.labels, result.model)
        f1.append(result.metrics["overall"]["weighted_f1"])
        flips.append(flip_rate(predictor, fold.test["title"].tolist(), prepared.y["test"])["flip_rate"])
        if evaluation is not None:
            eval_f1.append(result.metrics[EVAL]["overall"]["weighted_f1"])
        print(f"fold {i}: weighted F1 {f1[-1]:.4f}, one-word flip rate {flips[-1]:.1%}"
              + (f", evaluation set weighted F1 {eval_f1[-1]:.4f}" if eval_f1 else ""), flush=True)
    entry = {"recipe": {k: getattr(config, k) for k in LESSON_RECIPE}, "experiment": config.archive,
             "folds": config.cv, "seed": config.seed, "development_rows": len(development),
             "held_out_test_rows": len(parts.test), "weighted_f1": _summary(f1),
             "flip_rate": _summary(flips), "seconds": round(time.perf_counter() - start, 1)}
    if evaluation is not None:
        # Each fold's model scored on the evaluation set: its spread is the models', the
        # set stays the same.
        entry[EVAL] = {"data": evaluation.path, "md5": evaluation.md5, "weighted_f1": _summary(eval_f1)}
    save_result(Path(config.out), name, entry)
    print(f"{name}: weighted F1 {entry['weighted_f1']['mean']:.4f} ± {entry['weighted_f1']['std']:.4f}, "
          f"flip rate {entry['flip_rate']['mean']:.1%} ± {entry['flip_rate']['std']:.1%}"
          + (f", evaluation set weighted F1 {entry[EVAL]['weighted_f1']['mean']:.4f} ± "
             f"{entry[EVAL]['weighted_f1']['std']:.4f}" if evaluation else "")
          + f" -> {config.out}/{CV_JSON}, {CV_TABLE}")
    return entry


def save_result(directory: Path, name: str, entry: dict) -> None:
    """Add (or replace) one recipe's entry in cv.json and rewrite cv.md from it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CV_JSON
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[name] = entry
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps(results, indent=2))
    staging.replace(path)
    (directory / CV_TABLE).write_text(markdown_table(results))


def markdown_table(results: dict) -> str:
    """One row per recipe, in the order they were first run: mean ± std over the folds."""
    lines = ["Stratified k-fold cross-validation on the development rows (train + validation of "
             "the 70/15/15 split; the test split held out). Mean ± sample std over folds. The "
             "evaluation-set column scores each fold's model on --eval-data (- without it).", "",
             "| recipe | folds | evaluation set weighted F1 | CV weighted F1 | one-word flip rate |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        f, fl = r["weighted_f1"], r["flip_rate"]
        scored = r.get(EVAL, {}).get("weighted_f1")
        lines.append(f"| {name} | {r['folds']} | "
                     + (f"{scored['mean']:.4f} ± {scored['std']:.4f}" if scored else "-")
                     + f" | {f['mean']:.4f} ± {f['std']:.4f} | {fl['mean']:.1%} ± {fl['std']:.1%} |")
    return "\n".join(lines) + "\n"
