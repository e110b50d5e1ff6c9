"""Faithfulness of the word scores: comprehensiveness, as in ERASER (DeYoung et al., 2020).

Comprehensiveness of a headline at k = p(c | headline) - p(c | headline without its k words
with the highest Integrated Gradients score towards c), c the predicted class. A faithful
score makes that drop larger than deleting k random words of the same headline. Headlines
are short (about 6 words after preprocessing), so k counts words (1, 2, 3), not shares, and
a headline counts at k only when it has more than k words.

The mean depends on how confident the model is as much as on its word scores: deleting any
word of a headline predicted at 0.99 leaves little to lose. So the report gives two
references that belong to the model, not to its word scores:
- `best`: the largest drop any k words of the headline cause (see MAX_DELETIONS for how it
  is searched), and `share_of_best`, the mean top-k drop over the mean best drop;
- the top, random and best drops by the headline's probability (CONFIDENCE_BINS), which lets
  two models of different confidence be compared bin by bin.

`python -m training.faithfulness ARTIFACTS... --data CSV` prints the report of each artifacts
directory on a labelled headlines file.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence

import numpy as np
import torch

from model.encoders import pad_sequences
from model.explain import Explainer
from model.predictor import Predictor

TOP_K = (1, 2, 3)
# Lower edges of the bins of the predicted class's probability (the last bin ends at 1).
CONFIDENCE_BINS = (0.0, 0.5, 0.7, 0.9, 0.97)
# Headlines per forward pass: the test split of a large data set in one batch would hold every
# headline's feature maps (and, for explanations, its Integrated Gradients path) at once.
CHUNK = 512
# The best k-word deletion of a headline of n words is found by trying all C(n, k) of them
# when there are at most MAX_DELETIONS: always at k = 1, and for every AG News title (at most
# 17 words, C(17, 3) = 680). Otherwise a greedy search deletes the costliest word, then the
# costliest of the rest, k times: a lower bound on the best, raised to the top-k IG words' drop
# when those cost more. A headline costs at most 833 forward rows (17 words; MAX_TOKENS = 64).
MAX_DELETIONS = 700
# Headlines searched greedily together: one forward call per step for up to 64 x 64 rows.
GREEDY_GROUP = 64


def _class_probability(predictor: Predictor, sequences: list[list[int]], classes: list[int]) -> np.ndarray:
    out = []
    for start in range(0, len(sequences), CHUNK):
        ids = pad_sequences(sequences[start:start + CHUNK], min_length=predictor.model.config.max_filter_size)
        probs = predictor.probabilities(torch.from_numpy(ids).to(predictor.device))
        chosen = torch.as_tensor(classes[start:start + CHUNK])
        out.append(probs[torch.arange(len(chosen)), chosen].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def comprehensiveness(predictor: Predictor, texts: Sequence[str], ks: Sequence[int] = TOP_K,
                      seed: int = 0) -> dict:
    """Mean comprehensiveness of the top-k IG-scored words and of k random words, per k."""
    explainer = Explainer(predictor.model, predictor.labels, thresholds=None)
    texts = list(texts)
    predicted: list[int] = []
    explanations: list[dict] = []
    rows: list[list[int]] = []
    full_probability: list[float] = []
    for start in range(0, len(texts), CHUNK):
        batch = predictor.encode(texts[start:start + CHUNK])
        probs = predictor.probabilities(batch.ids)
        chosen = probs.argmax(dim=1)
        predicted += chosen.tolist()
        full_probability += probs[torch.arange(len(chosen)), chosen].tolist()
        explanations += explainer.explain(batch, chosen.tolist())
        rows += batch.ids.cpu().tolist()
    rng = np.random.default_rng(seed)
    report = {}
    for k in ks:
        keep = [i for i, e in enumerate(explanations) if len(e.get("token_scores") or ()) > k]
        top, random = [], []
        for i in keep:
            scores = np.asarray(explanations[i]["token_scores"])
            sequence = rows[i][:len(scores)]
            drop_top = set(np.argsort(-scores, kind="stable")[:k].tolist())
            drop_random = set(rng.choice(len(scores), size=k, replace=False).tolist())
            top.append(_without(sequence, drop_top))
            random.append(_without(sequence, drop_random))
        if not keep:
            report[str(k)] = {"headlines": 0, "top": None, "random": None, "best": None,
                              "share_of_best": None}
            continue
        target = [predicted[i] for i in keep]
        full = np.asarray([full_probability[i] for i in keep], dtype=np.float32)
        drop_top = full - _class_probability(predictor, top, target)
        drop_random = full - _class_probability(predictor, random, target)
        sequences = [rows[i][:len(explanations[i]["token_scores"])] for i in keep]
        drop_best = np.maximum(full - _lowest_after_deleting(predictor, sequences, target, k), drop_top)
        report[str(k)] = {
            "headlines": len(keep),
            "top": round(float(np.mean(drop_top)), 4),
            "random": round(float(np.mean(drop_random)), 4),
            "best": round(float(np.mean(drop_best)), 4),
            "share_of_best": round(float(np.mean(drop_top) / np.mean(drop_best)), 4)
            if np.mean(drop_best) > 0 else None,
            "by_confidence": _by_confidence(full, drop_top, drop_random, drop_best),
        }
    return {"measure": "comprehensiveness (ERASER), Integrated Gradients word scores",
            "by_k": report}


def _without(sequence: list[int], positions: Sequence[int]) -> list[int]:
    return [token for j, token in enumerate(sequence) if j not in positions]


def _lowest_after_deleting(predictor: Predictor, sequences: list[list[int]], classes: list[int],
                           k: int) -> np.ndarray:
    """Per headline, the lowest probability of its class left after deleting k of its words:
    over every k words when there are at most MAX_DELETIONS ways, greedily otherwise."""
    lowest = np.full(len(sequences), np.inf)
    exhaustive = [math.comb(len(sequence), k) <= MAX_DELETIONS for sequence in sequences]
    # Streamed in chunks: all deletions of a large set at once would not fit in memory.
    deletions = ((i, _without(sequences[i], gone))
                 for i in range(len(sequences)) if exhaustive[i]
                 for gone in itertools.combinations(range(len(sequences[i])), k))
    while chunk := list(itertools.islice(deletions, CHUNK)):
        owners = np.asarray([i for i, _ in chunk])
        probs = _class_probability(predictor, [kept for _, kept in chunk], [classes[i] for i in owners])
        np.minimum.at(lowest, owners, probs)
    greedy = [i for i in range(len(sequences)) if not exhaustive[i]]
    for start in range(0, len(greedy), GREEDY_GROUP):
        group = greedy[start:start + GREEDY_GROUP]
        kept = [sequences[i] for i in group]
        for _ in range(k):
            options = [[_without(words, [j]) for j in range(len(words))] for words in kept]
            targets = [classes[i] for i, each in zip(group, options, strict=True) for _ in each]
            probs = _class_probability(predictor, [o for each in options for o in each], targets)
            offsets = np.cumsum([0, *map(len, options)])
            for row, i in enumerate(group):
                mine = probs[offsets[row]:offsets[row + 1]]
                kept[row], lowest[i] = options[row][int(mine.argmin())], mine.min()
    return lowest


def _by_confidence(full: np.ndarray, drop_top: np.ndarray, drop_random: np.ndarray,
                   drop_best: np.ndarray) -> list[dict]:
    """Headlines, share and mean drops per bin of the full headline's class probability."""
    edges = [*CONFIDENCE_BINS, np.inf]
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (full >= low) & (full < high)
        count = int(inside.sum())
        rows.append({"from": low, "headlines": count, "share": round(count / len(full), 4),
                     "top": round(float(drop_top[inside].mean()), 4) if count else None,
                     "random": round(float(drop_random[inside].mean()), 4) if count else None,
                     "best": round(float(drop_best[inside].mean()), 4) if count else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print each artifacts directory's comprehensiveness on a headlines file, as JSON; exit 2
    with one line when the file or a directory cannot be read."""
    from training.data import read_headlines
    from training.errors import TrainingError

    parser = argparse.ArgumentParser(
        prog="python -m training.faithfulness",
        description="Comprehensiveness of the word scores of trained models on a headlines CSV.")
    parser.add_argument("artifacts", nargs="+", help="training runs' artifacts directories")
    parser.add_argument("--data", required=True,
                        help="a labelled headlines CSV (title,category, as for training; the "
                             "labels are not used)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random words")
    args = parser.parse_args(argv)
    unreadable = (TrainingError, OSError, ValueError, RuntimeError, TypeError, KeyError)
    try:
        titles = read_headlines(args.data)["title"].tolist()
    except unreadable as err:
        print(f"error: {args.data}: {err}", file=sys.stderr)
        return 2
    predictors = {}
    for directory in args.artifacts:
        try:
            predictors[directory] = Predictor.from_dir(directory)
        except unreadable as err:  # a missing, truncated or foreign file of the run
            why = " ".join(str(err).split()) or type(err).__name__
            print(f"error: {directory}: {why}", file=sys.stderr)
            return 2
    report = {directory: comprehensiveness(predictor, titles, seed=args.seed)
              for directory, predictor in predictors.items()}
    print(json.dumps(report, indent=2))
    return 0

if __name__ == "__main__":
    sys.exit(main())
