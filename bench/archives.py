"""Bench-only model archives: the echo floor, and copies of news_cnn.mar with only their
model-config.yaml rewritten (batch settings, workers), which config.properties loads by name.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from serving.archive import model_config_member, read_model_config

ECHO_HANDLER = Path(__file__).with_name("echo_handler.py")


def with_model_config(source: Path, target: Path, overrides: dict) -> Path:
    """Copy `source` to `target` with `overrides` merged into its model-config.yaml."""
    member = model_config_member(source)
    config = read_model_config(source) | overrides
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == member:
                data = yaml.safe_dump(config, sort_keys=False).encode()
            dst.writestr(item, data)
    return target


def build_echo(store: Path, model_config: dict, name: str = "echo") -> Path:
    """Archive the echo handler into `store` with the given model-config settings."""
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "model-config.yaml"
        config.write_text(yaml.safe_dump(model_config, sort_keys=False))
        subprocess.run(
            [str(Path(sys.executable).with_name("torch-model-archiver")),
             "--model-name", name, "--version", "1.0", "--handler", str(ECHO_HANDLER),
             "--config-file", str(config), "--export-path", str(store), "--force"],
            check=True, capture_output=True, text=True)
    return store / f"{name}.mar"


def copy_into(mar: Path, store: Path) -> Path:
    """Copy an archive into a bench model store (the project's store stays untouched)."""
    store.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(mar, store / mar.name))
