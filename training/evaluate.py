"""Test-split metrics and the two plots: confusion matrix and loss curves."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # noqa: E402

from training.train import History  # noqa: E402


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Overall (accuracy, weighted and macro precision/recall/F1) and per-class metrics."""
    labels = list(range(len(classes)))
    overall = {"accuracy": round(float(np.mean(y_true == y_pred)), 4), "support": int(len(y_true))}
    for average in ("weighted", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                     average=average, zero_division=0)
        overall.update({f"{average}_precision": round(float(p), 4),
                        f"{average}_recall": round(float(r), 4),
                        f"{average}_f1": round(float(f), 4)})
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {name: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                        "f1": round(float(f[i]), 4), "support": int(s[i])}
                 for i, name in enumerate(classes)}
    return {"overall": overall, "per_class": per_class}


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str],
                          path: str | Path, title: str = "Confusion matrix (test split)") -> None:
    """Save a confusion-matrix heat map with counts in the cells."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes,
           yticklabels=classes, xlabel="Predicted", ylabel="True", title=title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_loss_curves(histories: Mapping[str, History], path: str | Path) -> None:
    """Save train and validation loss per epoch, one panel per experiment (best epoch marked)."""
    fig, axes = plt.subplots(1, max(len(histories), 1), figsize=(3.2 * max(len(histories), 1), 3),
                             squeeze=False, sharey=True)
    # Without histories the one panel stays empty.
    for ax, (name, history) in zip(axes[0], histories.items(), strict=False):
        epochs = range(1, len(history.train_loss) + 1)
        ax.plot(epochs, history.train_loss, label="train")
        ax.plot(epochs, history.val_loss, label="validation")
        if history.best_epoch:
            ax.axvline(history.best_epoch, color="grey", linestyle=":", label="best")
        ax.set(title=name, xlabel="epoch")
    axes[0][0].set_ylabel("loss")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
