"""What the served model's behaviour looks like in numbers: the counts the handler reports as
metrics for every batch, and the same figures over a whole split (the reference profile that
training writes beside the model and the alert rules compare live traffic with).

One function counts both, so live traffic and the reference are measured the same way: a
headline's confidence is the probability of its label, its unknown words are the words mapped
to UNK, and a headline with no known word is an abstention (no label, no confidence).
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

# Upper bounds of the confidence buckets (Prometheus' `le`). The top class of 4 has at least
# 0.25, so the buckets resolve the range that matters, 0.5-1.0, in steps of 0.1 and finer at
# the top, where a confident model keeps most of its answers.
CONFIDENCE_BUCKETS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
INF = "+Inf"
# "Low confidence": the predicted class has at most this probability (one of the buckets).
LOW_CONFIDENCE = 0.6
# The quantiles of the confidence the reference profile records.
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9)


def bucket_name(bound: float | str) -> str:
    """The `le` label of a bucket, as Prometheus writes it: 0.5 -> "0.5", "+Inf"."""
    return bound if isinstance(bound, str) else repr(float(bound))


BUCKET_NAMES = tuple(bucket_name(b) for b in CONFIDENCE_BUCKETS) + (INF,)


@dataclass
class Tally:
    """Counts over answered headlines: labels, confidence buckets (cumulative, like a
    Prometheus histogram), words and unknown words, abstentions."""

    labels: Counter = field(default_factory=Counter)
    # Headlines per bucket (confidence in (previous le, le]); `buckets` sums them up.
    per_bucket: list[int] = field(default_factory=lambda: [0] * len(BUCKET_NAMES))
    confidence_sum: float = 0.0
    words: int = 0
    unknown_words: int = 0
    abstentions: int = 0

    def add(self, answers: Iterable[dict]) -> Tally:
        """Count answers as `Predictor.format` writes them; returns self."""
        for answer in answers:
            self.words += answer["num_tokens"]
            self.unknown_words += answer["unknown_tokens"]
            label = answer["label"]
            if label is None:
                self.abstentions += 1
                continue
            self.labels[label] += 1
            confidence = answer["probabilities"][label]
            self.confidence_sum += confidence
            # The first bound >= confidence: le is inclusive, as in Prometheus.
            self.per_bucket[bisect.bisect_left(CONFIDENCE_BUCKETS, confidence)] += 1
        return self

    @property
    def buckets(self) -> dict[str, int]:
        """le name -> headlines with confidence <= le (cumulative, like a Prometheus histogram)."""
        cumulative, total = {}, 0
        for name, count in zip(BUCKET_NAMES, self.per_bucket, strict=True):
            total += count
            cumulative[name] = total
        return cumulative

    @classmethod
    def merged(cls, tallies: Iterable[Tally]) -> Tally:
        """One tally of several."""
        total = cls()
        for tally in tallies:
            total.labels.update(tally.labels)
            total.per_bucket = [a + b for a, b in zip(total.per_bucket, tally.per_bucket, strict=True)]
            total.confidence_sum += tally.confidence_sum
            total.words += tally.words
            total.unknown_words += tally.unknown_words
            total.abstentions += tally.abstentions
        return total

    @property
    def labelled(self) -> int:
        """Headlines answered with a label."""
        return sum(self.labels.values())


def bucket_quantile(q: float, cumulative: dict[str, float]) -> float:
    """The q-quantile of a cumulative bucket distribution, interpolated linearly inside its
    bucket exactly as PromQL's histogram_quantile does (the lowest bucket starts at 0, a
    quantile in +Inf returns the highest finite bound)."""
    total = cumulative[INF]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, name in zip(CONFIDENCE_BUCKETS, BUCKET_NAMES, strict=False):
        count = cumulative.get(name, 0.0)
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return CONFIDENCE_BUCKETS[-1]


def profile(answers: list[dict], labels: list[str]) -> dict:
    """The reference profile of a split's answers: label shares (of the labelled answers),
    confidence quantiles (exact, and the median as histogram_quantile reads it from the
    buckets), the cumulative bucket shares, the low-confidence share, the unknown-word share
    and the abstention share."""
    tally = Tally().add(answers)
    if not tally.labelled:
        raise ValueError("no headline of the split got a label: there is no reference to profile")
    confidences = sorted(a["probabilities"][a["label"]] for a in answers if a["label"] is not None)
    shares = {name: tally.buckets.get(name, 0) / tally.labelled for name in BUCKET_NAMES}
    return {
        "headlines": len(answers),
        "label_shares": {label: tally.labels.get(label, 0) / tally.labelled for label in labels},
        "confidence_quantiles": {str(q): _quantile(confidences, q) for q in QUANTILES},
        "confidence_mean": tally.confidence_sum / tally.labelled,
        "confidence_buckets": shares,
        "confidence_median_from_buckets": bucket_quantile(0.5, shares),
        "low_confidence": LOW_CONFIDENCE,
        "low_confidence_share": shares[bucket_name(LOW_CONFIDENCE)],
        "unknown_word_share": tally.unknown_words / tally.words if tally.words else 0.0,
        "abstention_share": tally.abstentions / len(answers),
    }


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile of sorted values (numpy's default method)."""
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)
