"""Make sure wrk, the benchmarks' load generator, is installed: `make wrk`.

    python3 scripts/ensure_wrk.py

Nothing to do when wrk is on PATH. As root with apt-get, installs it (after an apt-get
update when the package lists are stale); otherwise exits 1 with the command to run.
Standard library only: it runs without the virtual environment.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

INSTALL = ["apt-get", "install", "-y", "wrk"]


def apt_get(*argv: str) -> bool:
    """Run apt-get quietly (its errors still reach stderr); True when it succeeded."""
    return subprocess.run(list(argv), stdout=subprocess.DEVNULL).returncode == 0


def main() -> int:
    """0 when wrk is (now) installed, else 1 and the command that installs it."""
    if shutil.which("wrk"):
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk (the benchmark's load generator) is missing: installing it with "
              "apt-get install -y wrk", flush=True)
        if apt_get(*INSTALL) or (apt_get("apt-get", "update") and apt_get(*INSTALL)):
            return 0
        return 1
    print("wrk (the benchmark's load generator) is missing: install it with "
          "'sudo apt-get install -y wrk'", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
