"""The names of the files a training run writes and serving reads, and how to load them.

Training writes all of them into one directory; `torch-model-archiver` ships them as extra
files; the handler loads them from the archive's directory with `load_model` and friends.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from model.cnn import CNN
from model.config import ModelConfig

WEIGHTS = "model.pt"
MODEL_CONFIG = "model_config.json"
TOKENIZER = "tokenizer.json"
LABEL_ENCODER = "label_encoder.json"
PREPROCESSOR = "preprocessor.json"
METRICS = "metrics.json"
MANIFEST = "manifest.json"
# The validation split's label shares, confidence and unknown words (model/monitoring.py):
# what the alert rules compare live traffic with (serving/monitoring.py).
REFERENCE_PROFILE = "reference_profile.json"

# What the handler needs at serving time; the rest (metrics, plots) is for people.
SERVING_FILES = (WEIGHTS, MODEL_CONFIG, TOKENIZER, LABEL_ENCODER, PREPROCESSOR, MANIFEST,
                 REFERENCE_PROFILE)


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> CNN:
    """Rebuild the CNN from its config and load its weights (tensors only, no pickled code)."""
    directory = Path(directory)
    model = CNN(ModelConfig.load(directory / MODEL_CONFIG))
    state = torch.load(directory / WEIGHTS, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def read_json(directory: str | Path, name: str) -> dict:
    """Read one JSON artifact."""
    return json.loads((Path(directory) / name).read_text())


def missing_files(directory: str | Path, names: tuple[str, ...] = SERVING_FILES) -> list[str]:
    """The artifact files that `directory` lacks."""
    return [n for n in names if not (Path(directory) / n).is_file()]
