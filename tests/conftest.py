"""Shared fixtures: small data written by the tests themselves, so no test needs ../shared."""


# --- serving: tiny trained-looking artifacts -------------------------------------------
import contextlib as _contextlib
import json as _json
import os as _os
import subprocess as _subprocess
import sys as _sys
from pathlib import Path as _Path

import pytest as _pytest

TINY_LABELS = ["Business", "Sci/Tech", "Sports", "World"]
TINY_STOPWORDS = ["a", "the", "of", "in", "is", "next"]
TINY_WORDS = ["tennis", "tournament", "final", "starts", "week", "stocks", "market", "oil",
              "prices", "election", "president", "vote", "rocket", "space", "software",
              "league", "cup", "bank", "war", "talks"]


def write_tiny_artifacts(directory: _Path, seed: int = 0, version: str = "0.1.0") -> _Path:
    """A training run's serving files with a tiny vocabulary and seeded random weights."""
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
    (directory / artifacts.MANIFEST).write_text(_json.dumps({"version": version}))
    return directory


@_contextlib.contextmanager
def served_archive(artifacts: _Path, workdir: _Path, model_config: str | None = None):
    """A real TorchServe (1 worker, free ports, the project's config) serving `artifacts`
    archived into `workdir`, with `model_config` as its model-config.yaml when given; stopped
    on exit. Tests that use it are integration tests."""
    from serving.archive import build_archive
    from serving.server import TorchServe, config_on_free_ports

    config_path = None
    if model_config is not None:
        config_path = workdir / "model-config.yaml"
        config_path.write_text(model_config)
    options = {"model_config": config_path} if config_path else {}
    build_archive(artifacts, workdir / "model_store", **options)
    ts = TorchServe(workdir, config_on_free_ports(workdir, workdir / "model_store", workers=1))
    try:
        ts.start(timeout=180)
        yield ts
    finally:
        ts.stop()


def pytest_addoption(parser: _pytest.Parser) -> None:
    """The reliability suite's options (--soak-size, ...): pytest reads options only from the
    conftest at the top of the tests."""
    from reliability.settings import add_options
    add_options(parser)


@_pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory) -> _Path:
    """Directory of serving artifacts (no filter thresholds) shared by the session's tests."""
    return write_tiny_artifacts(tmp_path_factory.mktemp("tiny_artifacts"))


# --- end to end: a real training run on DATA (CI sets DATA; skipped otherwise) --------


@_pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory) -> _Path:
    """Artifacts of `python -m training` on $DATA with the default (archived) recipe: the
    archived experiment and the TF-IDF reference only, to keep CI fast (each experiment is
    seeded on its own, so their numbers are the ones a full `make train` reports). With
    $EVAL (CI sets it to canonical_dev.csv) the run also scores that evaluation set."""
    data = _os.environ.get("DATA")
    if not data:
        _pytest.skip("set DATA=path/to/news.csv to train end to end")
    from training.config import TFIDF, TrainConfig

    out = tmp_path_factory.mktemp("e2e") / "artifacts"
    root = _Path(__file__).resolve().parents[1]
    command = [_sys.executable, "-m", "training", "--data", data, "--out", str(out),
               "--experiments", TrainConfig().archive, TFIDF]
    if _os.environ.get("EVAL"):
        command += ["--eval-data", _os.environ["EVAL"]]
    result = _subprocess.run(command, cwd=root, env={**_os.environ, "PYTHONPATH": str(root)},
                             capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
