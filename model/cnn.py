"""The text CNN of the seed, Made-With-ML's "Embeddings" lesson (README.md, "The seed"):
embeddings -> convolutions of widths 1, 2, 3 with "same" padding -> global max-pool ->
FC 150 -> 100 -> classes."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig


def same_padding(filter_size: int, stride: int = 1) -> tuple[int, int]:
    """Left and right padding that keep the output as long as the input (the seed's formula).

    For stride 1 this is ((f - 1) // 2, ceil((f - 1) / 2)), so output position `i` of a
    width-`f` filter covers input tokens `i - left .. i - left + f - 1`.
    """
    if stride != 1:
        raise ValueError("only stride 1 keeps 'same' length independent of the input length")
    total = filter_size - 1  # the seed's stride*(L-1) - L + f, with stride 1
    return total // 2, math.ceil(total / 2)


class OpenVocabEmbedding(nn.Module):
    """An embedding table whose first rows are learned and whose remaining rows are frozen.

    The frozen rows are a buffer, not a parameter: the optimizer never sees them, they add
    no gradient memory, and they still travel in the state dict.
    """

    def __init__(self, num_trainable: int, num_frozen: int, dim: int, padding_idx: int = 0,
                 freeze_trainable: bool = False) -> None:
        super().__init__()
        self.trainable = nn.Embedding(num_trainable, dim, padding_idx=padding_idx)
        self.trainable.weight.requires_grad = not freeze_trainable
        self.register_buffer("frozen", torch.zeros(num_frozen, dim))
        self.padding_idx = padding_idx

    @property
    def num_trainable(self) -> int:
        return self.trainable.num_embeddings

    def load_vectors(self, vectors: np.ndarray) -> None:
        """Copy a [vocab_size, dim] matrix into the learned and frozen rows."""
        weights = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
        expected = self.num_trainable + self.frozen.shape[0]
        if weights.shape != (expected, self.trainable.embedding_dim):
            raise ValueError(f"vectors have shape {tuple(weights.shape)}, expected "
                             f"({expected}, {self.trainable.embedding_dim})")
        with torch.no_grad():
            self.trainable.weight.copy_(weights[: self.num_trainable])
            self.trainable.weight[self.padding_idx].zero_()
            self.frozen.copy_(weights[self.num_trainable:])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.frozen.shape[0] == 0:
            return self.trainable(ids)
        learned = ids < self.num_trainable
        # Out-of-range indices are pointed at row 0 in the table they do not belong to,
        # then discarded by the final `where`.
        from_learned = self.trainable(torch.where(learned, ids, self.padding_idx))
        from_frozen = F.embedding(torch.where(learned, 0, ids - self.num_trainable), self.frozen)
        return torch.where(learned.unsqueeze(-1), from_learned, from_frozen)


class CNN(nn.Module):
    """Text CNN with one convolution per filter width and a global max-pool over positions."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = OpenVocabEmbedding(
            num_trainable=config.num_trainable,
            num_frozen=config.vocab_size - config.num_trainable,
            dim=config.embedding_dim,
            padding_idx=config.padding_idx,
            freeze_trainable=config.freeze_embeddings,
        )
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_dim, config.num_filters, kernel_size=f)
            for f in config.filter_sizes
        )
        # Fixed by the config, so worked out once here rather than on every forward pass:
        # each width's "same" padding, and the taps left and right of a position in the
        # widest window of any width (what `convolve` pads every kernel out to).
        self._paddings = [same_padding(f) for f in config.filter_sizes]
        self._window = (max(left for left, _ in self._paddings), max(right for _, right in self._paddings))
        self.dropout = nn.Dropout(config.dropout_p)
        self.fc1 = nn.Linear(config.num_filters * len(config.filter_sizes), config.hidden_dim)
        self.fc2 = nn.Linear(config.hidden_dim, config.num_classes)

    def feature_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Convolution outputs before pooling, one [batch, filters, length] tensor per width.

        Explanations read these to find the window each filter's max-pool picked.
        """
        x = self.embeddings(ids).transpose(1, 2)  # (N, C, L): channels first for Conv1d
        return self.convolve(x)

    def convolve(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every width's "same"-padded convolution of channels-first embeddings, in one call.

        All kernels are zero-padded to the widest window and stacked, so one conv1d does the
        work of one per width: the same sums, at about half the cost of three small calls
        (the forward pass dominates serving time). The stacked kernel is built from the
        per-width Conv1d weights on every call, so training still updates those and
        gradients (for explanations) flow through as before.
        """
        left, right = self._window
        weight = torch.cat([F.pad(conv.weight, (left - pad_left, right - pad_right))
                            for conv, (pad_left, pad_right) in zip(self.convs, self._paddings, strict=True)])
        bias = torch.cat([conv.bias for conv in self.convs])
        out = F.conv1d(F.pad(x, (left, right)), weight, bias)
        return list(out.split(self.config.num_filters, dim=1))

    def position_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """[batch, 1, length] True where a position belongs to the headline, not batch padding.

        Without it, a short headline padded to a longer neighbour's length would see extra
        all-PAD windows whose output (the bias) can win the max-pool: its prediction would
        depend on what it was batched with. An empty headline keeps its first position.
        """
        lengths = (ids != self.config.padding_idx).sum(dim=1).clamp(min=1)
        positions = torch.arange(ids.shape[1], device=ids.device)
        return (positions.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1)

    def pool(self, maps: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Global max-pool over the headline's own positions: [batch, filters * widths]."""
        return torch.cat(maps, dim=1).masked_fill(~mask, float("-inf")).amax(dim=2)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """The fully connected layers on pooled features."""
        hidden = self.dropout(F.relu(self.fc1(pooled)))
        return self.fc2(hidden)

    def from_embedded(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class logits from the embedding layer's output [batch, length, dim] and the
        position mask: the forward pass after the lookup (adversarial training perturbs its
        input)."""
        return self.classify(self.pool(self.convolve(embedded.transpose(1, 2)), mask))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Token indices [batch, length] (right-padded with PAD) to class logits [batch, classes]."""
        return self.from_embedded(self.embeddings(ids), self.position_mask(ids))
