"""Faithfulness of the explanations by deletion, as in ERASER (DeYoung et al., 2020).

For a headline predicted as class c, with p its probability of c:
- comprehensiveness of some words = p - p(headline without them): what they were worth;
- sufficiency of some words = p - p(only them): what is lost when only they are kept (lower
  is better).
Both are measured on the top k items of each side of an explanation, and on as many random
words of the same headline for reference:
- `by_k`: the word scores (Integrated Gradients towards c), ranked high to low;
- `ngrams_for` / `ngrams_against`: the n-grams listed for / against c (`Explainer.explain`),
  ranked by the size of their score; k items delete the union of their words;
- `words_against`: the words with a negative score, most negative first.
On a side that argues against c, deleting its items should raise p: comprehensiveness is then
negative, and `raised` is the share of headlines where it did. Headlines are short (about 6
words after preprocessing), so k counts items (1, 2, 3), not shares; a headline counts at k
only when it has k items on that side and deleting them leaves a word.

The mean depends on how confident the model is as much as on its word scores: deleting any
word of a headline predicted at 0.99 leaves little to lose. So the word scores' report gives two
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.encoders import pad_sequences
from model.explain import Explainer
from model.predictor import Predictor
from serving import cli

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


def faithfulness(predictor: Predictor, texts: Sequence[str], ks: Sequence[int] = TOP_K,
                 seed: int = 0) -> dict:
    """Comprehensiveness and sufficiency of each side of the explanations, per k, against
    random words (see the module's docstring for the keys)."""
    explainer = Explainer(predictor.model, predictor.labels)
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
    explained = [i for i, e in enumerate(explanations) if e.get("token_scores")]
    headlines = [Headline(rows[i][:len(explanations[i]["tokens"])], predicted[i], full_probability[i],
                          explanations[i]) for i in explained]
    rng = np.random.default_rng(seed)
    report: dict = {"measure": "ERASER comprehensiveness and sufficiency by deletion",
                    "headlines": len(headlines)}
    for side, items in SIDES.items():
        report[side] = {str(k): _side_at_k(predictor, headlines, [items(h.explanation) for h in headlines],
                                           k, rng, with_best=side == "by_k") for k in ks}
    return report


@dataclass(frozen=True)
class Headline:
    """An explained headline: its token ids, predicted class, that class's probability, and
    its explanation."""

    ids: list[int]
    target: int
    probability: float
    explanation: dict


def _words_for(explanation: dict) -> list[set[int]]:
    scores = np.asarray(explanation["token_scores"])
    return [{j} for j in np.argsort(-scores, kind="stable").tolist()]


def _words_against(explanation: dict) -> list[set[int]]:
    scores = explanation["token_scores"]
    return [{j} for j in sorted(range(len(scores)), key=lambda j: scores[j]) if scores[j] < 0]


def _ngrams(key: str) -> Callable[[dict], list[set[int]]]:
    def listed(explanation: dict) -> list[set[int]]:
        entries = [entry for top in explanation[key].values() if top for entry in (top, *top["runners_up"])]
        entries.sort(key=lambda e: (-abs(e["score"]), e["start"], e["end"]))
        return [set(range(e["start"], e["end"])) for e in entries]
    return listed


# Each side of an explanation as items ranked most important first, each a set of positions.
SIDES: dict[str, Callable[[dict], list[set[int]]]] = {
    "by_k": _words_for,
    "words_against": _words_against,
    "ngrams_for": _ngrams("ngrams"),
    "ngrams_against": _ngrams("opposing_ngrams"),
}


def _side_at_k(predictor: Predictor, headlines: list[Headline], items: list[list[set[int]]], k: int,
               rng: np.random.Generator, with_best: bool) -> dict:
    """Comprehensiveness and sufficiency of the top k items against as many random words."""
    chosen, removed, random = [], [], []
    for i, (headline, ranked) in enumerate(zip(headlines, items, strict=True)):
        gone = set().union(*ranked[:k]) if len(ranked) >= k else set()
        if gone and len(gone) < len(headline.ids):
            chosen.append(i)
            removed.append(gone)
            random.append(set(rng.choice(len(headline.ids), size=len(gone), replace=False).tolist()))
    if not chosen:
        return {"headlines": 0, "share": 0.0, "top": None, "random": None, "raised": None,
                "sufficiency": {"top": None, "random": None},
                **({"best": None, "share_of_best": None} if with_best else {})}
    picked = [headlines[i] for i in chosen]
    target = [h.target for h in picked]
    full = np.asarray([h.probability for h in picked], dtype=np.float32)

    def after(keep_only: bool, positions: list[set[int]]) -> np.ndarray:
        kept = [_only(h.ids, p) if keep_only else _without(h.ids, p)
                for h, p in zip(picked, positions, strict=True)]
        return full - _class_probability(predictor, kept, target)

    drop_top, drop_random = after(False, removed), after(False, random)
    entry = {"headlines": len(chosen), "share": round(len(chosen) / len(headlines), 4),
             "top": _mean(drop_top), "random": _mean(drop_random),
             "raised": round(float(np.mean(drop_top < 0)), 4),
             "sufficiency": {"top": _mean(after(True, removed)), "random": _mean(after(True, random))}}
    if with_best:
        lowest = _lowest_after_deleting(predictor, [h.ids for h in picked], target, k)
        drop_best = np.maximum(full - lowest, drop_top)
        entry["best"] = _mean(drop_best)
        entry["share_of_best"] = round(float(np.mean(drop_top) / np.mean(drop_best)), 4) \
            if np.mean(drop_best) > 0 else None
        entry["by_confidence"] = _by_confidence(full, drop_top, drop_random, drop_best)
    return entry


def _mean(values: np.ndarray) -> float:
    return round(float(np.mean(values)), 4)


def _only(sequence: list[int], positions: set[int]) -> list[int]:
    return [token for j, token in enumerate(sequence) if j in positions]


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


def build_parser() -> argparse.ArgumentParser:
    """`python -m training.faithfulness`'s arguments."""
    parser = cli.command_line("python -m training.faithfulness",
                              "Comprehensiveness and sufficiency of the explanations (word scores and\n"
                              "n-grams) of trained models on a headlines CSV.")
    parser.add_argument("artifacts", nargs="+", help="training runs' artifacts directories")
    parser.add_argument("--data", required=True,
                        help="a labelled headlines CSV (title,category, as for training; the "
                             "labels are not used)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random words")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print each artifacts directory's faithfulness report on a headlines file, as JSON; exit 2
    with one line when the file or a directory cannot be read."""
    from training.data import read_headlines
    from training.errors import TrainingError

    args = build_parser().parse_args(argv)
    unreadable = (TrainingError, OSError, ValueError, RuntimeError, TypeError, KeyError)
    try:
        titles = read_headlines(args.data)["title"].tolist()
    except unreadable as err:
        print(f"error: {args.data}: {err}", file=sys.stderr)
        return cli.USAGE
    predictors = {}
    for directory in args.artifacts:
        try:
            predictors[directory] = Predictor.from_dir(directory)
        except unreadable as err:  # a missing, truncated or foreign file of the run
            why = " ".join(str(err).split()) or type(err).__name__
            print(f"error: {directory}: {why}", file=sys.stderr)
            return cli.USAGE
    report = {directory: faithfulness(predictor, titles, seed=args.seed)
              for directory, predictor in predictors.items()}
    print(json.dumps(report, indent=2))
    return 0

if __name__ == "__main__":
    sys.exit(main())
