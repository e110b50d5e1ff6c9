"""The modules of scripts/ (plain scripts the Makefile runs, not a package), imported by path."""
from __future__ import annotations

import importlib.util
from types import ModuleType

from serving.properties import REPO_ROOT


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
