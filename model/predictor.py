"""Text in, probabilities out: the in-process model that the handler and the tests share."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from model import artifacts
from model.cnn import CNN
from model.encoders import UNK_INDEX, LabelEncoder, Tokenizer, pad_sequences
from model.preprocess import Preprocessor

# Why a headline got no label (the answer's `abstained`): after preprocessing it has no
# word the model knows (no word at all, or only UNK words), so every such headline would
# get the same logits, those of an empty input, whatever it said.
NO_KNOWN_WORDS = "no_known_words"


@dataclass
class EncodedBatch:
    """A batch of headlines ready for the network."""

    ids: torch.Tensor  # [batch, length], right-padded with PAD
    tokens: list[list[str]]  # the words after preprocessing
    unknown: list[int]  # how many of those words mapped to UNK

    def abstentions(self) -> list[str | None]:
        """Per headline, why the model abstains on it (NO_KNOWN_WORDS), or None to answer.

        A known word is one whose index is not UNK after preprocessing: a training word
        or a word of the frozen pretrained tail.
        """
        return [NO_KNOWN_WORDS if len(tokens) == unknown else None
                for tokens, unknown in zip(self.tokens, self.unknown)]


class Predictor:
    """Preprocess, tokenize, pad and classify headlines with a trained CNN."""

    def __init__(self, preprocessor: Preprocessor, tokenizer: Tokenizer, labels: LabelEncoder,
                 model: CNN, device: str | torch.device = "cpu") -> None:
        self.preprocessor = preprocessor
        self.tokenizer = tokenizer
        self.labels = labels
        self.model = model.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def from_dir(cls, directory: str | Path, device: str | torch.device = "cpu") -> "Predictor":
        """Load every serving artifact from a training run's (or an archive's) directory."""
        missing = artifacts.missing_files(
            directory, (artifacts.WEIGHTS, artifacts.MODEL_CONFIG, artifacts.TOKENIZER,
                        artifacts.LABEL_ENCODER, artifacts.PREPROCESSOR))
        if missing:
            raise FileNotFoundError(f"{directory} lacks artifact files: {', '.join(missing)}")
        directory = Path(directory)
        return cls(
            preprocessor=Preprocessor.load(directory / artifacts.PREPROCESSOR),
            tokenizer=Tokenizer.load(directory / artifacts.TOKENIZER),
            labels=LabelEncoder.load(directory / artifacts.LABEL_ENCODER),
            model=artifacts.load_model(directory, device),
            device=device,
        )

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Preprocess, tokenize and pad raw headlines into one tensor on the model's device."""
        cleaned = self.preprocessor.batch(texts)
        sequences = self.tokenizer.encode_batch(cleaned)
        ids = pad_sequences(sequences, min_length=self.model.config.max_filter_size)
        return EncodedBatch(
            ids=torch.from_numpy(ids).to(self.device),
            tokens=[c.split() for c in cleaned],
            unknown=[sum(i == UNK_INDEX for i in seq) for seq in sequences],
        )

    def probabilities(self, ids: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities [batch, classes] for encoded headlines, on the CPU:
        softmax(logits / temperature), the temperature saved with the model's config."""
        with torch.inference_mode():
            return torch.softmax(self.model(ids) / self.model.config.temperature, dim=1).cpu()

    def format(self, probs: torch.Tensor, batch: EncodedBatch) -> list[dict]:
        """One answer per headline: the label, probabilities high to low, token counts, and
        `abstained` (None, or the reason when the headline has no known word: then label
        and probabilities are None)."""
        answers = []
        for row, tokens, unknown, reason in zip(probs.tolist(), batch.tokens, batch.unknown,
                                                batch.abstentions()):
            if reason is None:
                ranked = sorted(zip(self.labels.classes, row), key=lambda kv: -kv[1])
                label, probabilities = ranked[0][0], {name: round(p, 6) for name, p in ranked}
            else:
                label, probabilities = None, None
            answers.append({
                "label": label,
                "probabilities": probabilities,
                "num_tokens": len(tokens),
                "unknown_tokens": unknown,
                "abstained": reason,
            })
        return answers

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """Classify raw headlines in one forward pass (abstaining on those with no known word)."""
        batch = self.encode(texts)
        return self.format(self.probabilities(batch.ids), batch)
