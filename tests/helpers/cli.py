"""Looking inside the project's argparse command lines (serving/cli.py's style)."""
from __future__ import annotations

import argparse


def commands_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name ({} for a command line without any)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options_of(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string a parser takes, sorted."""
    return sorted(option for action in parser._actions for option in action.option_strings)
