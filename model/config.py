"""The CNN's configuration: one typed place, saved as JSON next to the weights."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from model.encoders import PAD_INDEX


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network before loading its weights."""

    vocab_size: int
    num_classes: int
    # Indices below this are the training vocabulary (learned); the rest are frozen
    # pretrained vectors kept so unseen words do not become UNK (see Tokenizer).
    num_trainable: int | None = None
    embedding_dim: int = 50
    num_filters: int = 50
    filter_sizes: list[int] = field(default_factory=lambda: [1, 2, 3])
    hidden_dim: int = 100
    # The lesson's value; training sets its own (TrainConfig.dropout) and saves it here.
    dropout_p: float = 0.1
    freeze_embeddings: bool = False
    # The tokenizer pads with PAD_INDEX; saved so that a model keeps the index it was trained with.
    padding_idx: int = PAD_INDEX
    # Served probabilities are softmax(logits / temperature), fitted on the validation split
    # (training/calibration.py); 1.0 is the plain softmax. The argmax does not depend on it.
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.num_trainable is None:
            self.num_trainable = self.vocab_size
        self.filter_sizes = list(self.filter_sizes)
        if not 0 < self.num_trainable <= self.vocab_size:
            raise ValueError(f"num_trainable={self.num_trainable} must be in 1..vocab_size={self.vocab_size}")
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature} must be positive")

    @property
    def max_filter_size(self) -> int:
        """The widest filter: the shortest input the network accepts."""
        return max(self.filter_sizes)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read a config written by `save`."""
        return cls(**json.loads(Path(path).read_text()))
