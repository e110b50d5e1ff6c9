"""One training run from CSV to artifact directory: the steps in the order they happen."""
from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from model import artifacts
from model.encoders import LabelEncoder, Tokenizer, pad_sequences
from model.explain import compute_filter_thresholds
from model.predictor import Predictor
from model.preprocess import Preprocessor
from training import config as names
from training.behaviour import flip_rate
from training.calibration import calibrate
from training.config import TrainConfig
from training.data import CATEGORY, TITLE, Headlines, Split, check_stratifiable, load_headlines, sample, split
from training.embeddings import coverage, load_pretrained
from training.evaluate import plot_confusion_matrix, plot_loss_curves
from training.experiments import ExperimentResult, Prepared, markdown_table, run_experiments, text_table
from training.faithfulness import comprehensiveness
from training.save import atomic_directory
from training.stopwords import english_stopwords
from training.timing import STEP_SECONDS, StepTimer
from training.train import pick_device

# Files only people read; the serving files' names live in model.artifacts.
TRAIN_CONFIG = "train_config.json"
EXPERIMENTS_TABLE = "experiments.md"
CONFUSION_MATRIX = "confusion_matrix.png"
LOSS_CURVES = "loss_curves.png"
TEST_SPLIT = "test.csv"
# At most this many test headlines for faithfulness and the flip rate: all of news.csv's 1,500;
# a sample of a large data set's split (the standard error of a share stays under 1 point).
TRUST_SAMPLE = 2000
# Written by `--cv` runs (training/cv.py) and kept across training runs.
CV_JSON = "cv.json"
CV_TABLE = "cv.md"
PROTOCOL = ("Epochs are chosen on the validation loss, the temperature on validation ECE, the "
            "archived recipe by k-fold cross-validation outside the test split (cv.json); the "
            "test split is scored once per run, after every choice, and only reported.")


def prepare(parts: Split, preprocessor: Preprocessor, vocab_size: int) -> Prepared:
    """Preprocess every part; fit the label encoder and tokenizer on the training part only."""
    frames = {"train": parts.train, "val": parts.val, "test": parts.test}
    texts = {name: preprocessor.batch(frame[TITLE].tolist()) for name, frame in frames.items()}
    labels = LabelEncoder.fit(parts.train[CATEGORY])
    y = {name: labels.encode(frame[CATEGORY]) for name, frame in frames.items()}
    tokenizer = Tokenizer.fit(texts["train"], num_tokens=vocab_size)
    return Prepared(texts, y, labels, tokenizer, preprocessor.stopwords)


def filter_thresholds(result: ExperimentResult, prepared: Prepared, purity: float) -> dict:
    """Per-filter activation thresholds for explanations, from the training split."""
    sequences = result.tokenizer.encode_batch(prepared.texts["train"])
    ids = torch.from_numpy(pad_sequences(sequences, min_length=result.model.config.max_filter_size))
    return compute_filter_thresholds(result.model, ids, torch.from_numpy(prepared.y["train"]),
                                     purity=purity)


def run(config: TrainConfig) -> Path:
    """Train, evaluate and save; returns the artifact directory."""
    config.validate()
    start = time.perf_counter()
    timer = StepTimer()
    torch.set_num_threads(config.threads)
    with timer.step("read"):
        headlines = load_headlines(config.data, config.cache_dir)
        frame = sample(headlines.frame, config.max_rows, config.seed)
        check_stratifiable(frame, headlines.path)
        parts = split(frame, config.seed)
    print(f"data: {headlines.path} ({len(frame)} rows) -> train {len(parts.train)}, "
          f"validation {len(parts.val)}, test {len(parts.test)}")

    with timer.step("preprocess"):
        preprocessor = Preprocessor(english_stopwords())
        prepared = prepare(parts, preprocessor, config.vocab_size)
    pretrained = functools.cache(lambda: load_pretrained(config.embeddings))
    vocab_coverage = None
    if {names.GLOVE_FROZEN, names.GLOVE_FINETUNED} & set(config.experiments):
        with timer.step("pretrained_vectors"):
            vocab_coverage = coverage(prepared.texts["train"], prepared.tokenizer, pretrained())
        print(f"coverage of the training vocabulary by {config.embeddings}: "
              f"{vocab_coverage['vocab_share']:.1%} of {vocab_coverage['vocab_words']} words, "
              f"{vocab_coverage['token_share']:.1%} of word occurrences")

    results = run_experiments(prepared, config, pretrained, pick_device(config.device), timer)
    table = text_table(results, config.archive)
    print("\nTest split (precision, recall and F1 weighted by class support):\n" + table)

    archived = results[config.archive]
    with timer.step("filter_thresholds"):
        thresholds = filter_thresholds(archived, prepared, config.filter_purity)
    with timer.step("trust_metrics"):
        trust = trust_metrics(archived, parts, preprocessor, prepared, config.seed)
    seconds = round(time.perf_counter() - start, 1)
    with atomic_directory(config.out) as staging, timer.step("save_and_plots"):
        write_artifacts(staging, config, headlines, parts, preprocessor, prepared, results,
                        archived, thresholds, vocab_coverage, seconds, len(frame), trust)
        carry_cv_results(Path(config.out), staging)
    # Written after the rest so it includes the saving step; only people read it.
    _write_json(Path(config.out) / STEP_SECONDS, timer.rounded())
    print(f"\nwall time per step ({config.threads} thread(s)):\n{timer.table()}")
    print(f"\nsaved {config.archive} to {config.out}/ (weighted F1 "
          f"{archived.metrics['overall']['weighted_f1']:.4f}) in {seconds:.0f} s")
    return Path(config.out)


def trust_metrics(archived: ExperimentResult, parts: Split, preprocessor: Preprocessor,
                  prepared: Prepared, seed: int) -> dict:
    """Calibrate the archived model (its config gets the temperature to serve), then measure
    on the test split: ECE, faithfulness of the word scores, one-word flip rate."""
    calibration = calibrate(archived.probabilities["val"], prepared.y["val"],
                            archived.probabilities["test"], prepared.y["test"])
    archived.model.config.temperature = calibration["temperature"]
    predictor = Predictor(preprocessor, archived.tokenizer, prepared.labels, archived.model)
    titles, labels = parts.test[TITLE].tolist(), prepared.y["test"]
    if len(titles) > TRUST_SAMPLE:
        # The whole test split for ECE (cheap); a seeded sample for the two measures that
        # explain and re-classify every headline (23 s of 2.5 min at 120,000 rows otherwise).
        chosen = np.sort(np.random.default_rng(seed).choice(len(titles), TRUST_SAMPLE, replace=False))
        titles, labels = [titles[i] for i in chosen], labels[chosen]
    trust = {"calibration": calibration,
             "faithfulness": comprehensiveness(predictor, titles, seed=seed),
             "flip_rate": flip_rate(predictor, titles, labels)}
    print(f"test ECE ({calibration['bins']} bins): {calibration['test_ece']['before']:.4f} before, "
          f"{calibration['test_ece']['after']:.4f} after temperature "
          f"{calibration['fitted_temperature']:.2f} (fitted on validation; "
          f"{'served' if calibration['applied'] else 'not served: no lower validation ECE'})")
    by_k = trust["faithfulness"]["by_k"]
    print("comprehensiveness, top-k IG words vs k random words: " + ", ".join(
        f"k={k} {v['top']:.3f} vs {v['random']:.3f}" for k, v in by_k.items() if v["headlines"]))
    print(f"one-word flip rate: {trust['flip_rate']['flip_rate']:.1%} of "
          f"{trust['flip_rate']['pairs']} (headline, word) pairs")
    return trust


def carry_cv_results(previous: Path, staging: Path) -> None:
    """Keep the cross-validation results (`--cv` runs) of the directory being replaced."""
    for name in (CV_JSON, CV_TABLE):
        if (previous / name).is_file():
            shutil.copy2(previous / name, staging / name)


def write_artifacts(directory: Path, config: TrainConfig, headlines: Headlines, parts: Split,
                    preprocessor: Preprocessor, prepared: Prepared,
                    results: dict[str, ExperimentResult], archived: ExperimentResult,
                    thresholds: dict, vocab_coverage: dict | None, seconds: float, rows: int,
                    trust: dict) -> None:
    """Write every artifact of the archived experiment, and the comparison, into `directory`."""
    torch.save(archived.model.state_dict(), directory / artifacts.WEIGHTS)
    archived.model.config.save(directory / artifacts.MODEL_CONFIG)
    archived.tokenizer.save(directory / artifacts.TOKENIZER)
    prepared.labels.save(directory / artifacts.LABEL_ENCODER)
    preprocessor.save(directory / artifacts.PREPROCESSOR)
    _write_json(directory / artifacts.FILTER_THRESHOLDS, thresholds)
    config.save(directory / TRAIN_CONFIG)
    _write_json(directory / artifacts.METRICS, {
        "archived": config.archive,
        "protocol": PROTOCOL,
        "split": {"train": len(parts.train), "val": len(parts.val), "test": len(parts.test)},
        **trust,
        "vocab_coverage": vocab_coverage,
        "experiments": {name: {
            "embeddings": r.embeddings,
            "seconds": round(r.seconds, 1),
            "best_epoch": r.history.best_epoch if r.history else None,
            "epochs_run": len(r.history.val_loss) if r.history else None,
            "history": {"train_loss": r.history.train_loss, "val_loss": r.history.val_loss}
            if r.history else None,
            **r.metrics,
        } for name, r in results.items()},
    })
    (directory / EXPERIMENTS_TABLE).write_text(
        "Single split: validation F1, then the test split of the stratified 70/15/15 split "
        "(scored once, after every choice); precision, recall and F1 weighted by class support; "
        "vocab = learned + frozen pretrained words. Cross-validated figures: cv.md.\n\n"
        + markdown_table(results, config.archive))
    plot_confusion_matrix(prepared.y["test"], archived.y_pred, prepared.labels.classes,
                          directory / CONFUSION_MATRIX, title=f"{config.archive}: test split")
    plot_loss_curves({n: r.history for n, r in results.items() if r.history}, directory / LOSS_CURVES)
    parts.test[[TITLE, CATEGORY]].to_csv(directory / TEST_SPLIT, index=False)
    _write_json(directory / artifacts.MANIFEST, {
        "version": config.version,
        "experiment": config.archive,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": headlines.path, "md5": headlines.md5, "rows": rows},
        "embeddings": archived.embeddings,
        "vocab_coverage": vocab_coverage,
        "vocab": {"learned": archived.tokenizer.num_trainable,
                  "frozen_pretrained": len(archived.tokenizer) - archived.tokenizer.num_trainable},
        "test_metrics": archived.metrics["overall"],
        "train_seconds": seconds,
    })


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=_to_builtin))


def _to_builtin(value):
    """JSON for numpy scalars and arrays that reach the metrics."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
