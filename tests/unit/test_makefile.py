"""The Makefile never hands a command-line value to the shell or to make's expansion.

`make -n` parses the Makefile and prints the recipes without running them: a value that
escaped quoting would either run at parse time ($(shell ...)) or show up as a bare shell
command in the printed recipe. (The one real run, `make predict` against a server, is in
tests/integration/test_api_docs.py.)
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from serving.properties import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def dry_run(*args: str) -> subprocess.CompletedProcess:
    """`make -n` in the checkout; the venv stamp counts as up to date, so nothing installs."""
    return subprocess.run(["make", "-n", "--no-print-directory", "--old-file=.venv/.installed", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("target, variable", [
    ("evaluate", "FOLDS"), ("bench", "MODEL_STORE"), ("clean", "MODEL_STORE"),
    ("bench-compare", "BASELINE"), ("predict", "TEXT"), ("stop", "NOTICE"),
])
def test_a_value_is_quoted_from_the_environment_and_runs_nothing(tmp_path, target, variable):
    marker = tmp_path / "pwned"
    value = f'5"; touch {marker}; echo "$(shell touch {marker})`touch {marker}`'
    result = dry_run(target, f"{variable}={value}")
    assert not marker.exists()
    # The value never appears in a recipe as text: recipes read it from NEWS_<NAME>.
    assert f"touch {marker}" not in result.stdout, result.stdout


@pytest.mark.parametrize("variable, value", [("PYTHON", "python3;touch {m}"),
                                             ("VENV", "v$(shell touch {m})"),
                                             ("PYTHON", "python3 -c x")])
def test_commands_and_directories_with_shell_characters_are_refused(tmp_path, variable, value):
    marker = tmp_path / "pwned"
    result = dry_run("install", f"{variable}={value.format(m=marker)}")
    assert result.returncode != 0
    assert f"{variable} must be a command or path" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("override", ["MODEL_STORE=", "ARTIFACTS=", "ARTIFACTS={victim}", "ARTIFACTS=..",
                                      "MODEL_STORE=keep/../..", "ARTIFACTS=."])
def test_make_clean_refuses_empty_absolute_and_dot_paths_and_deletes_nothing(tmp_path, override):
    """Run for real, from a scratch directory: `MODEL_STORE=` would otherwise remove /*.mar."""
    victim = tmp_path / "keep"
    (victim / "logs").mkdir(parents=True)
    (victim / "news_cnn.mar").write_text("x")
    result = subprocess.run(["make", "--no-print-directory", "-f", str(REPO_ROOT / "Makefile"), "clean",
                             "ARTIFACTS=keep", "MODEL_STORE=keep", override.format(victim=victim)],
                            cwd=victim, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "refused: clean deletes only a relative path" in result.stderr
    assert (victim / "news_cnn.mar").is_file() and (victim / "logs").is_dir()


def test_make_clean_removes_relative_paths(tmp_path):
    (tmp_path / "art").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "news_cnn.mar").write_text("x")
    result = subprocess.run(["make", "--no-print-directory", "-f", str(REPO_ROOT / "Makefile"), "clean",
                             "ARTIFACTS=art", "MODEL_STORE=store"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "art").exists() and not (tmp_path / "store" / "news_cnn.mar").exists()


def test_the_checkout_make_runs_scripts_from_cannot_be_set_on_the_command_line(tmp_path):
    result = dry_run("clean", f"CHECKOUT={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert str(REPO_ROOT / "scripts" / "clean.py") in result.stdout and str(tmp_path) not in result.stdout


@pytest.fixture
def server_dir(tmp_path):
    """Where a TorchServe would have started: its config and key file, but nothing running."""
    (tmp_path / "config.properties").write_text("inference_address=http://127.0.0.1:1\n")
    (tmp_path / "key_file.json").write_text(json.dumps(
        {"management": {"key": "mkey", "expiration time": "2999-01-01T00:00:00Z"},
         "inference": {"key": "ikey", "expiration time": "2999-01-01T00:00:00Z"}, "API": {"key": "akey"}}))
    return tmp_path


@pytest.mark.parametrize("target, code, out, err", [
    ("status", 1, "", "TorchServe is not running"), ("ready", 1, "", "TorchServe is not running"),
    ("live", 1, "", "TorchServe is not running"), ("stop", 0, "TorchServe was not running.", ""),
    ("keys", 0, "ikey", ""),
])
def test_the_server_targets_run_the_serving_commands_on_server_dir(server_dir, target, code, out, err):
    """For real (no TorchServe needed): the recipe's options are ones its command takes."""
    result = subprocess.run(["make", "--no-print-directory", "--old-file=.venv/.installed", target,
                             f"SERVER_DIR={server_dir}", "API=1"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    # A failed recipe makes make exit 2 and name the command's own status (1, not a usage error's 2).
    assert result.returncode == (2 if code else 0) and (f"Error {code}" in result.stderr) == bool(code)
    assert out in result.stdout and err in result.stderr and "usage:" not in result.stderr
    if target == "keys":
        assert "akey" in result.stdout  # API=1 reached --api
