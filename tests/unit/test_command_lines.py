"""Every command line of the project is built one way (serving/cli.py): `build_parser()` and
`main()`, each subcommand carried out by its `run`, every option explained, its default shown,
and `--help` of every command answers."""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from serving import cli
from serving.properties import REPO_ROOT
from tests.helpers.cli import commands_of

# The modules run as `python -m ...` (and `news-cnn`), found by their `build_parser`.
COMMAND_LINES = sorted(
    path.removesuffix(".py").replace("/", ".")
    for path in subprocess.run(["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=True).stdout.split()
    if not path.startswith("tests/unit/") and "def build_parser(" in (REPO_ROOT / path).read_text())


def test_every_parser_is_made_by_serving_cli():
    """A parser made by hand is a second style (it would show no defaults, for one)."""
    found = subprocess.run(["git", "grep", "-l", "ArgumentParser(", "--", "*.py"], cwd=REPO_ROOT,
                           capture_output=True, text=True)
    assert found.returncode == 0  # 1 would be no match at all: serving/cli.py's own is missing
    by_hand = [path for path in found.stdout.split()
               if path not in ("serving/cli.py", "tests/unit/test_command_lines.py")]
    assert by_hand == []


def test_the_command_lines_are_found():
    assert {"client.news_cnn", "serving.__main__", "training.cli", "bench.__main__"} <= set(COMMAND_LINES)


@pytest.mark.parametrize("name", COMMAND_LINES)
def test_a_command_line_is_built_one_way(name, monkeypatch):
    # Importing ray (a peer's) puts its vendored packages first on sys.path for good; later
    # tests must see this environment's packages.
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:  # a benchmark peer's package: bench-only, installed on demand
        pytest.skip(f"{name} needs {err.name}, not installed (make bench-peers installs it)")
    assert callable(module.main)
    parser = module.build_parser()
    assert parser.prog.startswith(("python -m ", "news-cnn")), parser.prog
    commands = commands_of(parser)
    for command_name, command in {"": parser, **commands}.items():
        assert command.formatter_class is cli.HelpFormatter, (name, command_name)
        for action in command._actions:
            if not isinstance(action, argparse._SubParsersAction):  # the commands have their own
                assert action.help, (name, command_name, action.dest)  # every option explained
        if command_name:
            assert callable(command.get_default("run")), (name, command_name)
        command.format_help()  # a help text that does not format would fail only when asked for


def test_help_shows_a_set_default_and_not_an_unset_one():
    help_text = " ".join(importlib.import_module("client.news_cnn").build_parser().format_help().split())
    assert "model name (default: news_cnn)" in help_text  # set
    assert "NEWS_CNN_URL) (default" not in help_text  # --url: nothing given, nothing shown
