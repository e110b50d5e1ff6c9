"""`make clean`: remove the trained artifacts, the archives and the logs, nothing else.

    python3 scripts/clean.py

Reads NEWS_ARTIFACTS and NEWS_MODEL_STORE (the Makefile exports what was typed) and deletes
only relative paths inside the current directory: an empty value would make MODEL_STORE/*.mar
read /*.mar, and an absolute one or one with a "." or ".." part could name anything. A refused
value deletes nothing and exits 2. Standard library only: it runs without the virtual
environment.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

CHECKED = ("ARTIFACTS", "MODEL_STORE")


def refused(name: str, value: str) -> str | None:
    """Why `value` of make variable `name` may not be deleted from, or None."""
    parts = value.split("/")
    if not value or value.startswith("/") or "." in parts or ".." in parts:
        return (f"{name}='{value}' refused: clean deletes only a relative path inside the checkout (not "
                "empty, absolute, . or ..)")
    return None


def remove(path: Path) -> None:
    """Delete a file, link or directory tree as `rm -rf` does; a missing one is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def main(environ: Mapping[str, str] = os.environ) -> int:
    """Check every path first, then delete: 0, or 2 and one line per refused value."""
    values = {name: environ.get("NEWS_" + name, "") for name in CHECKED}
    problems = [p for p in (refused(name, value) for name, value in values.items()) if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 2
    for path in [Path(values["ARTIFACTS"]), *Path(values["MODEL_STORE"]).glob("*.mar"), Path("logs")]:
        remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
