"""Fail unless every `name==version` pin of a lock file is exactly what is installed.

The image build runs it after installing requirements/serving.txt (deploy/Dockerfile), so an
image never serves with other torch or packages than the lock names; the test suite runs it
against its own environment with requirements/dev.txt.

    python deploy/check_pins.py requirements/serving.txt
"""
from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def pins(path: str | Path) -> dict[str, str]:
    """name -> version of a requirements file's `name==version` lines (a lock's `\\`
    continuations and `--hash` lines skipped)."""
    found = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if "==" in line and not line.startswith("-"):
            name, pinned = line.split("==", 1)
            found[name.strip().lower()] = pinned.strip()
    return found


def mismatches(path: str | Path) -> list[str]:
    """One line per pin that is missing or differs (a local build tag like +cpu included)."""
    problems = []
    for name, pinned in pins(path).items():
        try:
            got = version(name)
        except PackageNotFoundError:
            problems.append(f"{name}: not installed, {pinned} pinned")
            continue
        if got != pinned:
            problems.append(f"{name}: {got} installed, {pinned} pinned")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Exit 1 with one line per mismatch, else 0."""
    args = sys.argv[1:] if argv is None else argv
    problems = mismatches(args[0] if args else "requirements/serving.txt")
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
