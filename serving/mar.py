"""What a built .mar holds, read without unpacking it: its model-config.yaml.

A .mar is a zip whose MAR-INF/MANIFEST.json names the model-config file packed with it.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import yaml

MANIFEST = "MAR-INF/MANIFEST.json"


def config_name(mar: str | Path) -> str:
    """The archive member that holds the model-config (from its manifest)."""
    with zipfile.ZipFile(mar) as z:
        manifest = json.loads(z.read(MANIFEST))
    name = manifest.get("model", {}).get("configFile")
    if not name:
        raise ValueError(f"{mar} has no model-config file in its manifest")
    return name


def read_model_config(mar: str | Path) -> dict:
    """The model-config.yaml packed in `mar` (batchSize, maxBatchDelay, workers, ...)."""
    with zipfile.ZipFile(mar) as z:
        return yaml.safe_load(z.read(config_name(mar))) or {}
