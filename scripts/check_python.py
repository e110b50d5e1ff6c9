"""Refuse a Python the pinned requirements have no wheels for, with one clear message.

    python3 scripts/check_python.py [pyproject.toml]

Reads `requires-python` from pyproject.toml (the one place the range is written) and exits
1 with a message when the running interpreter is outside it. Standard library only and
Python-3.6 syntax: it must run on the interpreter it judges, whatever its age.
"""
import re
import sys


def supported_range(pyproject_text):
    """(lowest, first_unsupported) minor versions from requires-python = ">=3.X,<3.Y"."""
    match = re.search(r'^requires-python\s*=\s*">=(\d+)\.(\d+)\s*,\s*<(\d+)\.(\d+)"',
                      pyproject_text, re.MULTILINE)
    if not match:
        raise ValueError('pyproject.toml has no requires-python = ">=3.X,<3.Y" line')
    a, b, c, d = (int(g) for g in match.groups())
    return (a, b), (c, d)


def main(argv, here=None):
    """0 when `here` (default: this interpreter's (major, minor)) is supported, else 1 and why."""
    path = argv[0] if argv else "pyproject.toml"
    with open(path) as f:
        low, high = supported_range(f.read())
    here = tuple(here or sys.version_info[:2])
    if low <= here < high:
        return 0
    last = (high[0], high[1] - 1)
    print("error: Python {}.{} ({}) cannot install the pinned packages: torch 2.13.0, numpy 1.26.4, "
          "scipy 1.13.1 and gensim 4.3.3 have wheels for CPython {}.{} to {}.{} only. Install one of "
          "those and run e.g. `make install PYTHON=python{}.{}`.".format(
              here[0], here[1], sys.executable, low[0], low[1], last[0], last[1], last[0], last[1]),
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
