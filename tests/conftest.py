"""The fixtures every tier shares; what tests import (data writers, fake servers, a real
TorchServe) is in tests/helpers/. Small data is written by the tests themselves, so no test
needs ../shared except the end-to-end run on DATA."""
import os as _os
import subprocess as _subprocess
import sys as _sys
from pathlib import Path as _Path

import pytest as _pytest

from tests.helpers.tiny_artifacts import write_tiny_artifacts


def pytest_addoption(parser: _pytest.Parser) -> None:
    """The reliability suite's options (--soak-size, ...): pytest reads options only from the
    conftest at the top of the tests."""
    from tests.helpers.soak_settings import add_options
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
