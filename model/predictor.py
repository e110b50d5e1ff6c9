"""Text in, probabilities out: the in-process model that the handler and the tests share."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from model import artifacts
from model.cnn import CNN
from model.encoders import PAD_INDEX, UNK_INDEX, LabelEncoder, Tokenizer, pad_sequences
from model.preprocess import Preprocessor

# Why a headline got no label (the answer's `abstained`): after preprocessing it has no
# word the model knows (no word at all, or only UNK words), so every such headline would
# get the same logits, those of an empty input, whatever it said.
NO_KNOWN_WORDS = "no_known_words"
# Words kept per headline after preprocessing; the rest are dropped before the model sees
# them. The training headlines (news.csv, 10,000 AG News titles) have 5.6 words on average
# after preprocessing, 15 at the 99.9th percentile and 17 at most, so no real headline loses
# a word. Without a cap, 1,000 characters that accent folding expands ("¼" -> "1⁄4") make
# 1,001 words, and a batch's tensors grow with them.
MAX_TOKENS = 64
# Positions (rows x padded length) of one forward pass: memory per pass stays the same
# whatever a request holds, while an ordinary batch (32 headlines of a few words) is one
# pass. A batch of 32 of the largest requests (64 headlines of MAX_TOKENS words each) runs
# in 16 passes; on the trained model one pass of 8,192 positions grew a worker by 41 MiB at
# most (32,768: 90 MiB) for the same speed.
MAX_FORWARD_CELLS = 8192


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
                for tokens, unknown in zip(self.tokens, self.unknown, strict=True)]


def row_chunks(ids: torch.Tensor, max_cells: int, min_width: int = 1) -> Iterator[tuple[slice, torch.Tensor]]:
    """Consecutive rows of `ids` [N, L] (right-padded with PAD) in chunks of at most
    `max_cells` rows x positions, each trimmed to its own longest row (at least `min_width`).

    Trimming drops only PAD columns, which the model masks out, so a row's result does not
    depend on its chunk. A single row wider than `max_cells` is a chunk of its own.
    """
    lengths = (ids != PAD_INDEX).sum(dim=1).clamp(min=min_width).tolist()
    start = 0
    while start < len(lengths):
        width, end = lengths[start], start + 1
        while end < len(lengths) and (end + 1 - start) * max(width, lengths[end]) <= max_cells:
            width, end = max(width, lengths[end]), end + 1
        yield slice(start, end), ids[start:end, :width]
        start = end


class Predictor:
    """Preprocess, tokenize, pad and classify headlines with a trained CNN."""

    def __init__(self, preprocessor: Preprocessor, tokenizer: Tokenizer, labels: LabelEncoder,
                 model: CNN, device: str | torch.device = "cpu", max_tokens: int = MAX_TOKENS) -> None:
        self.preprocessor = preprocessor
        self.tokenizer = tokenizer
        self.labels = labels
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.max_tokens = max_tokens

    @classmethod
    def from_dir(cls, directory: str | Path, device: str | torch.device = "cpu") -> Predictor:
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
        """Preprocess, tokenize and pad raw headlines into one tensor on the model's device,
        keeping each headline's first `max_tokens` words."""
        words = [cleaned.split()[:self.max_tokens] for cleaned in self.preprocessor.batch(texts)]
        sequences = self.tokenizer.encode_batch([" ".join(w) for w in words])
        ids = pad_sequences(sequences, min_length=self.model.config.max_filter_size)
        return EncodedBatch(
            ids=torch.from_numpy(ids).to(self.device),
            tokens=words,
            unknown=[sum(i == UNK_INDEX for i in seq) for seq in sequences],
        )

    def probabilities(self, ids: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities [batch, classes] for encoded headlines, on the CPU:
        softmax(logits / temperature), the temperature saved with the model's config. Run in
        chunks of at most MAX_FORWARD_CELLS positions."""
        with torch.inference_mode():
            logits = [self.model(chunk) for _, chunk in
                      row_chunks(ids, MAX_FORWARD_CELLS, self.model.config.max_filter_size)]
            if not logits:
                return torch.empty(0, self.model.config.num_classes)
            return torch.softmax(torch.cat(logits) / self.model.config.temperature, dim=1).cpu()

    def format(self, probs: torch.Tensor, batch: EncodedBatch) -> list[dict]:
        """One answer per headline: the label, probabilities high to low, token counts, and
        `abstained` (None, or the reason when the headline has no known word: then label
        and probabilities are None)."""
        answers = []
        for row, tokens, unknown, reason in zip(probs.tolist(), batch.tokens, batch.unknown,
                                                batch.abstentions(), strict=True):
            if reason is None:
                ranked = sorted(zip(self.labels.classes, row, strict=True), key=lambda kv: -kv[1])
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
