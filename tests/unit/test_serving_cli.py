"""`python -m serving`: one subcommand per server command, each with its own options; a
mistake is a usage error (exit 2) and a missing config one line (exit 1), never a traceback."""
from __future__ import annotations

import re

import pytest

from serving import __main__ as serving_cli
from tests.helpers.cli import commands_of

COMMANDS = commands_of(serving_cli.build_parser())


def test_help_lists_every_command_with_its_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        serving_cli.main(["--help"])
    assert exit_.value.code == 0
    listed = " ".join(capsys.readouterr().out.split())
    assert len(COMMANDS) == 10
    for name, command in COMMANDS.items():
        assert re.search(rf"\b{name} {re.escape(' '.join(command.description.split()))}", listed), name


@pytest.mark.parametrize("argv, option", [(["keys", "--notice", "1"], "--notice"),
                                          (["status", "--no-drain"], "--no-drain"),
                                          (["drain", "--timeout", "5"], "--timeout"),
                                          (["keys", "--api", "--show", "inference"], "--show")])
def test_an_option_another_command_takes_is_a_usage_error(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        serving_cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m serving") and option in err


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        serving_cli.main([])
    assert exit_.value.code == 2 and "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_config_is_one_line_and_exit_1(command, tmp_path, capsys):
    assert serving_cli.main([command, "--workdir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.properties" in err and len(err.strip().splitlines()) == 1
