"""scripts/run_with_args.py: the Makefile's *_ARGS become arguments, never shell code."""
from __future__ import annotations

import subprocess
import sys

import pytest

from serving.properties import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "run_with_args.py"
PRINT_ARGV = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def run(env: dict[str, str], *names: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *names, "--", *PRINT_ARGV, "first"],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=30, check=False)


def test_words_are_split_like_a_shell_would_and_appended_in_order(tmp_path):
    result = run({"NEWS_A": "--epochs 3 --analogy 'paris - france + germany'", "NEWS_B": "--x"},
                 "NEWS_A", "NEWS_B")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ('["first", "--epochs", "3", "--analogy", '
                                     '"paris - france + germany", "--x"]')


def test_nothing_in_a_value_is_expanded_or_run(tmp_path):
    marker = tmp_path / "pwned"
    value = f"$(touch {marker}) `touch {marker}` ; touch {marker} $HOME"
    result = run({"NEWS_A": value}, "NEWS_A")
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert "$HOME" in result.stdout and "`touch" in result.stdout


def test_an_unset_variable_adds_nothing():
    assert run({}, "NEWS_MISSING").stdout.strip() == '["first"]'


@pytest.mark.parametrize("value", ["--archive 'unclosed", '--x "also'])
def test_bad_quoting_is_one_line_naming_the_make_variable(value):
    result = run({"NEWS_TRAIN_ARGS": value}, "NEWS_TRAIN_ARGS")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: TRAIN_ARGS is not a valid list of arguments")
    assert len(result.stderr.strip().splitlines()) == 1
