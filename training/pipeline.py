"""One training run from CSV to artifact directory: the steps in the order they happen."""
from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model import artifacts
from model.encoders import LabelEncoder, Tokenizer
from model.monitoring import profile
from model.predictor import Predictor
from model.preprocess import Preprocessor
from training import config as names
from training.behaviour import flip_rate
from training.calibration import calibrate
from training.config import TrainConfig
from training.data import (
    CATEGORY,
    EVAL,
    TITLE,
    EvalSet,
    Headlines,
    Split,
    check_stratifiable,
    load_headlines,
    read_eval_set,
    sample,
    split,
)
from training.embeddings import coverage, load_pretrained
from training.evaluate import plot_confusion_matrix, plot_loss_curves
from training.experiments import ExperimentResult, Prepared, markdown_table, run_experiments, text_table
from training.faithfulness import faithfulness
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
# At most this many headlines of a scored part for faithfulness and the flip rate: all of
# news.csv's 1,500 test headlines and canonical_dev's 3,800; a sample of a large data set's
# split (the standard error of a share stays under 1 point).
TRUST_SAMPLE = 4000
# Written by `--cv` runs (training/cv.py) and kept across training runs.
CV_JSON = "cv.json"
CV_TABLE = "cv.md"
PROTOCOL = ("Epochs are chosen on the validation loss, the temperature on validation ECE; "
            "the test split and the evaluation set (--eval-data) are scored once per run, after "
            "every choice, and only reported. The recipe is compared across runs on the "
            "evaluation set (docs/training.md).")
TABLE_CAPTION = ("Weighted F1 on the evaluation set (--eval-data) when given, then validation "
                 "weighted F1 (what the choice between experiments may look at), then the test "
                 "split of the stratified 70/15/15 split; precision, recall and F1 weighted by "
                 "class support; the evaluation set and the test split scored once, after every "
                 "choice.")
PART_NAMES = {"test": "test split", EVAL: "evaluation set"}


@dataclass
class TrainingRun:
    """What one run produced, from which every artifact is written."""

    config: TrainConfig
    headlines: Headlines
    parts: Split
    preprocessor: Preprocessor
    prepared: Prepared
    results: dict[str, ExperimentResult]
    vocab_coverage: dict | None  # of the learned vocabulary by the pretrained vectors
    calibration: dict  # the served temperature, ECE before and after (training/calibration.py)
    trust: dict  # faithfulness and flip rate of the archived model, per scored part
    reference: dict  # the served model's profile on validation (model/monitoring.py)
    evaluation: EvalSet | None
    seconds: float

    @property
    def archived(self) -> ExperimentResult:
        """The experiment whose model is saved for serving."""
        return self.results[self.config.archive]


def prepare(parts: Split, preprocessor: Preprocessor, vocab_size: int,
            evaluation: EvalSet | None = None) -> Prepared:
    """Preprocess every part (and the evaluation set, as part "eval"); fit the label encoder
    and tokenizer on the training part only."""
    frames = {"train": parts.train, "val": parts.val, "test": parts.test}
    if evaluation is not None:
        frames[EVAL] = evaluation.frame
    texts = {name: preprocessor.batch(frame[TITLE].tolist()) for name, frame in frames.items()}
    labels = LabelEncoder.fit(parts.train[CATEGORY])
    y = {name: labels.encode(frame[CATEGORY]) for name, frame in frames.items()}
    tokenizer = Tokenizer.fit(texts["train"], num_tokens=vocab_size)
    return Prepared(texts, y, labels, tokenizer, preprocessor.stopwords)


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
        evaluation = read_eval_set(config.eval_data, frame) if config.eval_data else None
        parts = split(frame, config.seed, config.split_block)
    print(f"data: {headlines.path} ({len(frame)} rows) -> train {len(parts.train)}, "
          f"validation {len(parts.val)}, test {len(parts.test)}"
          + (f"; evaluation set {evaluation.path} ({len(evaluation.frame)} rows)" if evaluation else ""))

    with timer.step("preprocess"):
        preprocessor = Preprocessor(english_stopwords())
        prepared = prepare(parts, preprocessor, config.vocab_size, evaluation)
    pretrained = functools.cache(lambda: load_pretrained(config.embeddings, config.trust_gensim_data))
    vocab_coverage = None
    if {names.GLOVE_FROZEN, names.GLOVE_FINETUNED} & set(config.experiments):
        with timer.step("pretrained_vectors"):
            vocab_coverage = coverage(prepared.texts["train"], prepared.tokenizer, pretrained())
        print(f"coverage of the training vocabulary by {config.embeddings}: "
              f"{vocab_coverage['vocab_share']:.1%} of {vocab_coverage['vocab_words']} words, "
              f"{vocab_coverage['token_share']:.1%} of word occurrences")

    results = run_experiments(prepared, config, pretrained, pick_device(config.device), timer)
    print("\n" + TABLE_CAPTION + "\n" + text_table(results, config.archive))

    archived = results[config.archive]
    with timer.step("calibration"):
        calibration = calibrate(archived.probabilities["val"], prepared.y["val"],
                                {part: (archived.probabilities[part], prepared.y[part])
                                 for part in ("test", EVAL) if part in archived.probabilities})
    # The served probabilities are softmax(logits / T), T fitted on validation only.
    archived.model.config.temperature = calibration["temperature"]
    print(calibration_summary(calibration))
    predictor = Predictor(preprocessor, archived.tokenizer, prepared.labels, archived.model)
    scored = {"test": parts.test[TITLE].tolist()}
    if evaluation is not None:
        scored[EVAL] = evaluation.frame[TITLE].tolist()
    with timer.step("trust_metrics"):
        trust = {part: trust_metrics(predictor, titles, prepared.y[part], config.seed)
                 for part, titles in scored.items()}
    for part, figures in trust.items():
        print(f"{PART_NAMES[part]}: " + trust_summary(figures))
    if evaluation is not None:
        print(f"\nevaluation set {evaluation.path}: weighted F1 "
              f"{archived.metrics[EVAL]['overall']['weighted_f1']:.4f} ({config.archive})")
    # What the alert rules compare live traffic with: the validation split, never the
    # evaluation set (nothing is fitted on it).
    reference = profile(predictor.predict(parts.val[TITLE].tolist()), prepared.labels.classes)
    outcome = TrainingRun(config, headlines, parts, preprocessor, prepared, results,
                          vocab_coverage, calibration, trust, reference, evaluation,
                          seconds=round(time.perf_counter() - start, 1))
    with atomic_directory(config.out) as staging, timer.step("save_and_plots"):
        write_artifacts(staging, outcome)
        carry_cv_results(Path(config.out), staging)
    # Written after the rest so it includes the saving step; only people read it.
    _write_json(Path(config.out) / STEP_SECONDS, timer.rounded())
    print(f"\nwall time per step ({config.threads} thread(s)):\n{timer.table()}")
    print(f"\nsaved {config.archive} to {config.out}/ (test-split weighted F1 "
          f"{archived.metrics['overall']['weighted_f1']:.4f}) in {outcome.seconds:.0f} s")
    return Path(config.out)


def trust_metrics(predictor: Predictor, titles: list[str], labels: np.ndarray, seed: int) -> dict:
    """Faithfulness of the word scores and the one-word flip rate of the served model on
    `titles` (a seeded sample of TRUST_SAMPLE when there are more)."""
    if len(titles) > TRUST_SAMPLE:
        # Both measures explain or re-classify every headline: a sample keeps a large data
        # set's run short (23 s of 2.5 min at 120,000 rows otherwise).
        chosen = np.sort(np.random.default_rng(seed).choice(len(titles), TRUST_SAMPLE, replace=False))
        titles, labels = [titles[i] for i in chosen], labels[chosen]
    return {"faithfulness": faithfulness(predictor, titles, seed=seed),
            "flip_rate": flip_rate(predictor, titles, labels)}


def calibration_summary(calibration: dict) -> str:
    """One line per scored part: ECE before and after the temperature, and whether it is served."""
    lines = [f"temperature {calibration['fitted_temperature']:.2f} fitted on validation ("
             f"{'served' if calibration['applied'] else 'not served: no lower validation ECE'})"]
    for part in ("test", EVAL):
        if f"{part}_ece" in calibration:
            ece = calibration[f"{part}_ece"]
            lines.append(f"{PART_NAMES[part]} ECE ({calibration['bins']} bins): "
                         f"{ece['before']:.4f} before, {ece['after']:.4f} after")
    return "\n".join(lines)


def trust_summary(trust: dict) -> str:
    """Comprehensiveness per k of the word scores and n-grams, and the flip rate, on two lines."""
    report = trust["faithfulness"]
    words = ", ".join(f"k={k} {v['top']:.3f} vs {v['random']:.3f} ({v['best']:.3f})"
                      for k, v in report["by_k"].items() if v["headlines"])
    ngrams_for, against = report["ngrams_for"]["1"], report["ngrams_against"]["1"]
    ngrams = (f"top n-gram for {ngrams_for['top']:.3f} vs {ngrams_for['random']:.3f} random"
              if ngrams_for["headlines"] else "no n-gram for")
    if against["headlines"]:
        ngrams += (f"; deleting the top n-gram against raised it in {against['raised']:.1%} of the "
                   f"{against['share']:.1%} of headlines that have one")
    return ("comprehensiveness, top-k IG words vs k random words (best k words): " + words
            + f"\n  {ngrams}; one-word flip rate {trust['flip_rate']['flip_rate']:.1%} of "
              f"{trust['flip_rate']['pairs']} pairs")


def carry_cv_results(previous: Path, staging: Path) -> None:
    """Keep the cross-validation results (`--cv` runs) of the directory being replaced."""
    for name in (CV_JSON, CV_TABLE):
        if (previous / name).is_file():
            shutil.copy2(previous / name, staging / name)


def write_artifacts(directory: Path, run: TrainingRun) -> None:
    """Write every artifact of the archived experiment, and the comparison, into `directory`."""
    config, archived, prepared = run.config, run.archived, run.prepared
    torch.save(archived.model.state_dict(), directory / artifacts.WEIGHTS)
    archived.model.config.save(directory / artifacts.MODEL_CONFIG)
    archived.tokenizer.save(directory / artifacts.TOKENIZER)
    prepared.labels.save(directory / artifacts.LABEL_ENCODER)
    run.preprocessor.save(directory / artifacts.PREPROCESSOR)
    _write_json(directory / artifacts.REFERENCE_PROFILE, run.reference)
    config.save(directory / TRAIN_CONFIG)
    evaluation = None
    if run.evaluation is not None:
        evaluation = {"data": run.evaluation.path, "md5": run.evaluation.md5,
                      "rows": len(run.evaluation.frame), **archived.metrics[EVAL],
                      "ece": run.calibration[f"{EVAL}_ece"], **run.trust[EVAL]}
    _write_json(directory / artifacts.METRICS, {
        # The evaluation set first: it is the figure to report (the test split of a
        # news.csv-like file shares stories with the training rows).
        **({EVAL: evaluation} if evaluation else {}),
        "archived": config.archive,
        "protocol": PROTOCOL,
        "split": {"train": len(run.parts.train), "val": len(run.parts.val), "test": len(run.parts.test)},
        "calibration": run.calibration,
        **run.trust["test"],
        "vocab_coverage": run.vocab_coverage,
        "experiments": {name: {
            "embeddings": r.embeddings,
            "seconds": round(r.seconds, 1),
            "best_epoch": r.history.best_epoch if r.history else None,
            "epochs_run": len(r.history.val_loss) if r.history else None,
            "history": {"train_loss": r.history.train_loss, "val_loss": r.history.val_loss}
            if r.history else None,
            **r.metrics,
        } for name, r in run.results.items()},
    })
    (directory / EXPERIMENTS_TABLE).write_text(
        TABLE_CAPTION + " Vocab = learned + frozen pretrained words. Cross-validated figures: "
        "cv.md.\n\n" + markdown_table(run.results, config.archive))
    plot_confusion_matrix(prepared.y["test"], archived.y_pred, prepared.labels.classes,
                          directory / CONFUSION_MATRIX, title=f"{config.archive}: test split")
    plot_loss_curves({n: r.history for n, r in run.results.items() if r.history}, directory / LOSS_CURVES)
    run.parts.test[[TITLE, CATEGORY]].to_csv(directory / TEST_SPLIT, index=False)
    _write_json(directory / artifacts.MANIFEST, {
        "version": config.version,
        "experiment": config.archive,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": run.headlines.path, "md5": run.headlines.md5,
                 "rows": len(run.parts.train) + len(run.parts.val) + len(run.parts.test)},
        "embeddings": archived.embeddings,
        "vocab_coverage": run.vocab_coverage,
        "vocab": {"learned": archived.tokenizer.num_trainable,
                  "frozen_pretrained": len(archived.tokenizer) - archived.tokenizer.num_trainable},
        **({"eval_data": {"path": run.evaluation.path, "md5": run.evaluation.md5},
            "eval_metrics": archived.metrics[EVAL]["overall"]} if run.evaluation else {}),
        "test_metrics": archived.metrics["overall"],
        "train_seconds": run.seconds,
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
