"""Refuse to install without the Java TorchServe needs (17+), with one clear message.

    python3 scripts/check_java.py

Exits 1 when `java` is not on PATH or `java -version` reports a version below 17 (Java 8
reports "1.8.0_..."), 0 otherwise. Standard library only and Python-3.6 syntax, like
check_python.py: `make install` runs it before the virtual environment exists.
"""
import re
import shutil
import subprocess
import sys
from typing import Optional

MINIMUM = 17
INSTALL = "sudo apt-get install -y openjdk-17-jre-headless"


def java_version(output: str) -> Optional[str]:
    """The version string `java -version` printed (on stderr), e.g. "17.0.9" or "1.8.0_392"."""
    match = re.search(r'version "([^"]+)"', output)
    return match.group(1) if match else None


def problem(java: Optional[str], output: str) -> Optional[str]:
    """Why this Java will not do, or None: no java on PATH, or a version below MINIMUM."""
    if java is None:
        return "Java {}+ is required by TorchServe: install it, e.g. '{}'".format(MINIMUM, INSTALL)
    version = java_version(output)
    if version is not None and int(re.match(r"\d+", version).group(0)) < MINIMUM:
        return "Java {} found; TorchServe needs {}+: {}".format(version, MINIMUM, INSTALL)
    return None


def main() -> int:
    """0 when a Java 17+ is on PATH, else 1 and one line on stderr."""
    java = shutil.which("java")
    output = ""
    if java is not None:
        run = subprocess.run([java, "-version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True)
        output = run.stdout
    message = problem(java, output)
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
