"""The project's wheel, built offline from a copy of the checkout (no build/ left in it)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from serving.properties import REPO_ROOT


def build_wheel(workdir: Path) -> Path:
    """Build news-cnn's wheel under `workdir` with this Python's setuptools; its path."""
    source = workdir / "news-cnn"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "model_store", "artifacts", "logs", "__pycache__", "*.egg-info", "build"))
    out = workdir / "wheel"
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
               "--wheel-dir", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("news_cnn-*.whl")
    return built
