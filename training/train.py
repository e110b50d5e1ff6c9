"""The training loop, readable top to bottom.

Adam, ReduceLROnPlateau on the validation loss, class-weighted cross-entropy plus the same
loss on adversarially shifted embeddings, batches of headlines of similar length, early
stopping with patience, and at the end the weights of the best epoch (lowest validation
loss) are put back: a deep copy of the state dict, not a reference to the live model.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.cnn import CNN
from model.encoders import pad_sequences
from training.augment import Augment
from training.config import TrainConfig


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when available (for "auto"), else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """The seed's weights: 1 / count per class, so rare classes count as much as common ones."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(1.0 / np.maximum(counts, 1.0), dtype=torch.float32)


# A shuffled epoch is cut into runs of this many batches, each sorted by length before it is
# cut into batches: headlines of similar length pad less (a random batch of 256 news.csv
# headlines is padded to 2.6 times the tokens it holds, and the convolutions cost per padded
# token), while the runs keep each batch a random draw of the data.
BUCKET_BATCHES = 32


def batch_order(lengths: np.ndarray, batch_size: int, shuffle: bool = False,
                generator: np.random.Generator | None = None) -> list[np.ndarray]:
    """Indices of each batch. Without `shuffle`, batches of consecutive length-sorted rows;
    with it, rows are shuffled, sorted by length within runs of BUCKET_BATCHES batches, and
    the batches come in shuffled order."""
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = generator or np.random.default_rng()
    order = rng.permutation(len(lengths))
    run = batch_size * BUCKET_BATCHES
    order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                            for chunk in np.split(order, range(run, len(order), run))])
    chosen = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def batches(sequences: Sequence[Sequence[int]], labels: np.ndarray, batch_size: int,
            min_length: int, shuffle: bool = False,
            generator: np.random.Generator | None = None,
            ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """(row indices, ids, labels) batches of similar-length rows (see `batch_order`), each
    padded to its longest sequence and at least `min_length`."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    for chosen in batch_order(lengths, batch_size, shuffle, generator):
        ids = pad_sequences([sequences[i] for i in chosen], min_length=min_length)
        yield chosen, torch.from_numpy(ids), torch.from_numpy(labels[chosen])


@dataclass
class History:
    """Per-epoch losses and where the best epoch was."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 means no epoch ran
    seconds: float = 0.0


class Trainer:
    """Fits a CNN on encoded headlines and keeps the weights of its best validation epoch."""

    def __init__(self, model: CNN, weights: torch.Tensor, config: TrainConfig,
                 device: torch.device | str = "cpu", name: str = "train",
                 augment: Augment | None = None) -> None:
        """`weights` are the class weights of the loss; from `config` the trainer reads the
        optimiser (lr, embedding_lr, weight_decay), the loop (epochs, patience, batch_size,
        seed), label_smoothing and adversarial."""
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.loss_fn = nn.CrossEntropyLoss(weight=weights.to(self.device),
                                           label_smoothing=config.label_smoothing)
        # Validation loss picks the epoch: plain cross-entropy, whatever the training loss.
        self.val_loss_fn = nn.CrossEntropyLoss(weight=weights.to(self.device))
        self.augment = augment
        embedding = [p for p in self.model.embeddings.parameters() if p.requires_grad]
        rest = [p for n, p in self.model.named_parameters()
                if p.requires_grad and not n.startswith("embeddings.")]
        # Weight decay on the layers after the embeddings only: decaying the embedding table
        # would pull rarely seen words' pretrained vectors towards zero.
        groups = [{"params": rest, "weight_decay": config.weight_decay}]
        if embedding:
            groups.append({"params": embedding, "lr": config.embedding_lr})
        # The fused kernel updates every tensor in one pass: the same Adam, about 5x faster per
        # step than the default one-tensor-at-a-time loop on CPU, which dominated small batches.
        self.optimizer = torch.optim.Adam(groups, lr=config.lr, fused=self.device.type in ("cpu", "cuda"))
        # Lower the rate after two epochs without progress, so it helps before early stopping.
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min",
                                                                    factor=0.1, patience=1)
        self.epochs, self.patience, self.batch_size = config.epochs, config.patience, config.batch_size
        self.adversarial = config.adversarial
        self.min_length = model.config.max_filter_size
        self.rng = np.random.default_rng(config.seed)
        self.name = name

    def adversarial_loss(self, embedded: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                         loss: torch.Tensor) -> torch.Tensor:
        """The loss again with each headline's embeddings moved by `adversarial` (L2 norm over
        its row of the batch) in the direction that raises `loss` most (Miyato et al., 2017):
        the network learns that a small change of the word vectors, such as a word it never
        saw whose frozen vector sits near a known one, must not change the class.

        The row includes the batch's padding columns next to a shorter headline, which the
        width-2 and width-3 windows read; serving pads with zero vectors only. Moving the
        headline's own positions only measured the same on canonical_dev (docs/training.md)."""
        (grad,) = torch.autograd.grad(loss, embedded, retain_graph=True)
        norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)
        shifted = embedded + self.adversarial * (grad / norm).detach()
        return self.loss_fn(self.model.from_embedded(shifted, mask), labels)

    def train_epoch(self, sequences: Sequence[Sequence[int]], labels: np.ndarray, epoch: int) -> float:
        """One pass over the shuffled (and, with `augment`, freshly augmented) training data;
        returns the mean loss on the headlines as they are (the adversarial term left out)."""
        self.model.train()
        if self.augment is not None:
            sequences = self.augment(sequences, labels, self.rng)
        total, count = 0.0, 0
        steps = batches(sequences, labels, self.batch_size, self.min_length, shuffle=True,
                        generator=self.rng)
        progress = tqdm(steps, total=-(-len(sequences) // self.batch_size), leave=False,
                        desc=f"{self.name} epoch {epoch}", disable=None)
        for _, ids, y in progress:
            ids, y = ids.to(self.device), y.to(self.device)
            self.optimizer.zero_grad()
            embedded, mask = self.model.embeddings(ids), self.model.position_mask(ids)
            if self.adversarial > 0 and not embedded.requires_grad:
                # A frozen table: the shift still needs the gradient at the lookup's output.
                embedded.requires_grad_()
            loss = self.loss_fn(self.model.from_embedded(embedded, mask), y)
            objective = loss
            if self.adversarial > 0:
                objective = loss + self.adversarial_loss(embedded, mask, y, loss)
            objective.backward()
            self.optimizer.step()
            total += loss.item() * len(y)
            count += len(y)
            progress.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate_loss(self, sequences: Sequence[Sequence[int]], labels: np.ndarray) -> float:
        """Mean loss without dropout or gradient."""
        self.model.eval()
        total = 0.0
        for _, ids, y in batches(sequences, labels, self.batch_size * 4, self.min_length):
            ids, y = ids.to(self.device), y.to(self.device)
            total += self.val_loss_fn(self.model(ids), y).item() * len(y)
        return total / max(len(labels), 1)

    def fit(self, train: tuple[Sequence[Sequence[int]], np.ndarray],
            val: tuple[Sequence[Sequence[int]], np.ndarray]) -> History:
        """Train until `epochs` or `patience` epochs without a better validation loss, then
        restore the best epoch's weights."""
        history = History()
        start = time.perf_counter()
        best_loss, best_state, waited = float("inf"), None, 0
        for epoch in range(1, self.epochs + 1):
            train_loss = self.train_epoch(*train, epoch=epoch)
            val_loss = self.evaluate_loss(*val)
            self.scheduler.step(val_loss)
            history.train_loss.append(train_loss)
            history.val_loss.append(val_loss)
            history.learning_rate.append(self.optimizer.param_groups[0]["lr"])
            if val_loss < best_loss:
                # A copy, not a reference: later epochs must not overwrite the best weights.
                best_loss, best_state, waited = val_loss, copy.deepcopy(self.model.state_dict()), 0
                history.best_epoch = epoch
            else:
                waited += 1
            tqdm.write(f"  {self.name} epoch {epoch:2d}: train loss {train_loss:.4f}, "
                       f"val loss {val_loss:.4f}{' *' if history.best_epoch == epoch else ''}")
            if waited >= self.patience:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        history.seconds = time.perf_counter() - start
        return history

    @torch.no_grad()
    def predict(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Class probabilities [n, classes] for encoded headlines, in their order."""
        self.model.eval()
        out = np.zeros((len(sequences), self.model.config.num_classes), dtype=np.float32)
        dummy = np.zeros(len(sequences), dtype=np.int64)
        for rows, ids, _ in batches(sequences, dummy, self.batch_size * 4, self.min_length):
            out[rows] = torch.softmax(self.model(ids.to(self.device)), dim=1).cpu().numpy()
        return out
