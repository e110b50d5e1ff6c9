"""Run a command with extra arguments taken from environment variables, without a shell.

    python scripts/run_with_args.py NEWS_TRAIN_ARGS [...] -- command [arg ...]

The Makefile's *_ARGS options (TRAIN_ARGS="--epochs 3 --archive glove_frozen") hold several
arguments. Pasting them into a recipe would let the shell expand `$`, backticks and `;`; here
each variable is split the way a shell splits words (quotes group them) and nothing in it is
expanded or run. Standard library only: it runs before the virtual environment exists too.
"""
from __future__ import annotations

import os
import shlex
import sys


def extra_arguments(names: list[str], environ: dict[str, str]) -> list[str]:
    """The words of each named variable, in order; ValueError names a badly quoted one."""
    words: list[str] = []
    for name in names:
        try:
            words += shlex.split(environ.get(name, ""))
        except ValueError as err:
            shown = name[len("NEWS_"):] if name.startswith("NEWS_") else name
            raise ValueError(f"{shown} is not a valid list of arguments ({err}): "
                             f"{environ.get(name, '')!r}") from None
    return words


def main(argv: list[str]) -> int:
    """Split argv at `--`, extend the command with the variables' words and exec it."""
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: run_with_args.py VAR [VAR ...] -- command [arg ...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    try:
        command = argv[split + 1:] + extra_arguments(argv[:split], dict(os.environ))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.execvp(command[0], command)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
