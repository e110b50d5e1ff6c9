"""The one style of the project's command lines: `news-cnn`, `python -m serving`,
`python -m training`, `python -m bench` and the smaller `python -m ...` tools.

Each is a module with `build_parser()` and `main(argv=None) -> int`:
- its parser comes from `command_line()`, its subcommands from `subcommands()`, each with
  `set_defaults(run=function)`; options several commands share are parent parsers;
- every option's default shows in --help, and descriptions and examples keep their lines;
- an option argparse refuses prints the usage and its error, exit 2; input that cannot be used
  prints one line `error: ...` on stderr, exit 2 (USAGE); a failure to do the work (no server,
  a refused key) one line and exit 1 (FAILED); Ctrl-C of a long run (a file, a training) says
  what it kept, exit 130 (INTERRUPTED); a reader that closes stdout early is no error.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

USAGE, FAILED, INTERRUPTED = 2, 1, 130


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and epilogs as written (examples keep their lines), and each option's
    default, where it has one worth showing (not an absent value or an unset flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        unset = action.default is None or action.default is False or action.default in ("", [])
        if unset or "%(default)" in (action.help or ""):
            return action.help
        if isinstance(action.default, (list, tuple)):  # as it is typed: a b c, or a,b,c for one value
            several = action.nargs not in (None, "?")
            shown = (" ".join(map(shlex.quote, map(str, action.default))) if several
                     else ",".join(map(str, action.default)))
            return f"{action.help} (default: {shown.replace('%', '%%')})"
        return super()._get_help_string(action)


def command_line(prog: str, doc: str, **options) -> argparse.ArgumentParser:
    """A command line's parser: `doc`'s first paragraph is its description, the rest its
    epilog, both as written."""
    summary, _, details = doc.strip().partition("\n\n")
    return argparse.ArgumentParser(prog=prog, description=summary,
                                   epilog=details or None, formatter_class=HelpFormatter, **options)


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """`parser`'s subcommands (one is required); add each with `add_command`."""
    return parser.add_subparsers(dest="command", required=True, metavar="COMMAND")


def add_command(commands: argparse._SubParsersAction, name: str, run, help: str,
                parents: tuple[argparse.ArgumentParser, ...] = ()) -> argparse.ArgumentParser:
    """Add subcommand `name`, carried out by `run(...)` (as `args.run`), with the options of
    `parents`; returns its parser for its own options."""
    command = commands.add_parser(name, help=help, description=help, parents=list(parents),
                                  formatter_class=HelpFormatter)
    command.set_defaults(run=run)
    return command


def stdout_closed() -> int:
    """What a command line does when stdout's reader went away (`... | head`): nothing more.
    stdout is pointed at /dev/null so the interpreter's final flush does not raise again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def shared_options() -> argparse.ArgumentParser:
    """A parent parser: options declared once and given to the commands that take them."""
    return argparse.ArgumentParser(add_help=False)
