"""Why the CNN predicted what it did: a signed score for every word, and the n-grams its
max-pool picked, scored on the same scale.

* `token_scores`: each word's Integrated Gradients towards the predicted class's logit, on the
  embeddings, from an all-PAD baseline (what Captum's LayerIntegratedGradients gives), with
  its convergence delta. Positive argues for the class, negative against it.
* `ngrams` / `opposing_ngrams`: every filter's global max-pool picks one window of the
  headline (the interpretability idea of the seed, Made-With-ML's "Embeddings" lesson, with
  "same" padding mapped back to tokens). Each distinct span the filters picked is scored with
  the Integrated Gradients of its words together, which is the sum of their word scores
  (Integrated Gradients is additive over input features: a group's attribution along one path
  is the sum of its members'). Spans with a positive score are listed for the class, spans with
  a negative score against it, each side ranked by the size of its score, per n-gram length.
  A span therefore has one sign, is never on both sides, and never contradicts the words.

Attributing the predicted logit to the pooled features instead (exact Integrated Gradients
through fc1 -> ReLU -> fc2, summed per span over the filters that picked it) was measured and
rejected: on the test split, 53 % of the spans it listed against the class had a positive
word-score sum, and deleting the top one raised the class's probability in only 75 % of
headlines. A pooled feature's credit is measured against a baseline the headline never falls
back to: deleting a span makes each filter pick its next-best window, not nothing
(docs/explanations.md).

Every number depends only on the headline itself, never on what it was batched with:
positions past a headline are masked exactly as the model's own max-pool masks them.
"""
from __future__ import annotations

from collections import Counter

import torch

from model.cnn import CNN, same_padding
from model.encoders import LabelEncoder
from model.predictor import EncodedBatch, row_chunks

# On 320 AG News test headlines, |delta| / |logit change| with 8 steps had median 0.6% and
# 95th percentile 2.2% (16 steps: 0.3% and 1.4%), and the cost grows with the steps: 8
# keeps /explanations fast next to /predictions. Midpoint Riemann sums were as accurate as
# Captum's default Gauss-Legendre here (0.5%, 2.3%) without its per-call node computation
# (about 0.6 ms, a fifth of explaining one headline).
DEFAULT_IG_STEPS = 8
IG_METHOD = "riemann_middle"  # Captum's name for the rule `_integrated_gradients` uses
# Positions (interpolated rows x padded length) of one Integrated Gradients pass: headlines
# are explained in chunks of at most MAX_IG_CELLS // ig_steps positions, so memory per pass
# stays the same whatever a request holds, while an ordinary batch (32 headlines of a few
# words, 8 steps) is one pass. Explaining 512 headlines of 64 words on the trained model
# grew a process by 96 MiB in 1.7 s with 16,384 (65,536: 224 MiB in 2.9 s).
MAX_IG_CELLS = 16384
# Spans listed after the top one of each side and length.
RUNNERS_UP = 2


def max_pool_picks(model: CNN, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The class logits [N, classes] and, per filter width, the position each filter's global
    max-pool picked [N, F], over the headline's own positions only (as the model pools), from
    one pass through the convolutions."""
    mask = model.position_mask(ids)
    pooled = [m.masked_fill(~mask, float("-inf")).max(dim=2) for m in model.feature_maps(ids)]
    values, positions = zip(*pooled, strict=True)
    return model.classify(torch.cat(values, dim=1)), list(positions)


def window(position: int, filter_size: int, length: int) -> tuple[int, int]:
    """Tokens [start, end) that output `position` of a "same"-padded filter covers, clipped
    to a headline of `length` tokens (the padding columns hold no token)."""
    left, _ = same_padding(filter_size)
    return max(0, position - left), min(length, position - left + filter_size)


def span_scores(picked: dict[tuple[int, int], int], scores: list[float]) -> dict[tuple[int, int], float]:
    """Each picked span's score: the sum of its words' scores (their joint attribution)."""
    return {(start, end): sum(scores[start:end]) for start, end in picked}


def rank_spans(tokens: list[str], picked: Counter, scores: dict[tuple[int, int], float],
               lengths: list[int], sign: int) -> dict[str, dict | None]:
    """Per n-gram length, the span whose score has `sign` (+1 for, -1 against) and the largest
    size, with up to RUNNERS_UP more; None for a length where no span has that sign."""
    ranked: dict[str, dict | None] = {}
    for length in lengths:
        side = sorted(((start, end) for (start, end), score in scores.items()
                       if end - start == length and score * sign > 0),
                      key=lambda span: (-abs(scores[span]), span))
        entries = [{"ngram": " ".join(tokens[start:end]), "start": start, "end": end,
                    "score": round(scores[(start, end)], 6), "filters": picked[(start, end)]}
                   for start, end in side[:1 + RUNNERS_UP]]
        ranked[str(length)] = {**entries[0], "runners_up": entries[1:]} if entries else None
    return ranked


class Explainer:
    """Explains a batch of encoded headlines with one model shared with the predictor."""

    def __init__(self, model: CNN, labels: LabelEncoder, ig_steps: int = DEFAULT_IG_STEPS) -> None:
        if ig_steps < 2:
            raise ValueError(f"ig_steps must be at least 2, got {ig_steps}")
        self.model = model.eval()
        self.labels = labels
        self.ig_steps = ig_steps
        self.sizes = list(model.config.filter_sizes)
        # A window clipped at a headline's edge covers fewer words than its filter is wide,
        # so spans are grouped by how many words they hold: 1 .. the widest filter.
        self.lengths = list(range(1, max(self.sizes) + 1))

    def explain(self, batch: EncodedBatch, predicted: list[int]) -> list[dict]:
        """One explanation per headline of `batch`, towards its class in `predicted`.

        A headline the predictor abstains on (no known word, `EncodedBatch.abstentions`)
        gets only `tokens`, `explained_class: None` and `abstained` (the reason): there is
        nothing to explain, so no n-grams and no scores; its entry in `predicted` is ignored.

        Every other headline's dict holds: `tokens`; `explained_class`; `token_scores`:
        signed Integrated Gradients attribution of each token to the predicted class's logit
        (negative: the word argues against it), summing to logit(headline) - logit(all PAD)
        + `delta`; `ig_steps`; `ngrams` and `opposing_ngrams`, per n-gram length ("1", "2",
        "3"): among the spans some filter's max-pool picked, the one with the largest
        positive (for) or negative (against) `score`, the sum of its words' token scores,
        with its tokens [start, end), `filters` (how many filters of any width picked exactly
        those words) and `runners_up`; None for a length where no picked span has that sign.
        """
        if len(predicted) != batch.ids.shape[0]:
            raise ValueError(f"{len(predicted)} predicted classes for {batch.ids.shape[0]} headlines")
        reasons = batch.abstentions()
        explanations: list[dict | None] = [
            None if reason is None else {"tokens": tokens, "explained_class": None, "abstained": reason}
            for tokens, reason in zip(batch.tokens, reasons, strict=True)]
        readable = [row for row, reason in enumerate(reasons) if reason is None]
        max_cells = max(1, MAX_IG_CELLS // self.ig_steps)
        for part, ids in row_chunks(batch.ids[readable], max_cells, self.model.config.max_filter_size):
            rows = readable[part]
            chunk = EncodedBatch(ids=ids, tokens=[batch.tokens[r] for r in rows],
                                 unknown=[batch.unknown[r] for r in rows])
            explained = self._explain_readable(chunk, [predicted[r] for r in rows])
            for row, explanation in zip(rows, explained, strict=True):
                explanations[row] = explanation
        return explanations

    def _explain_readable(self, batch: EncodedBatch, predicted: list[int]) -> list[dict]:
        """`explain` for headlines that all have a known word."""
        with torch.inference_mode():
            logits, positions = max_pool_picks(self.model, batch.ids)
        scores, deltas = self._token_scores(batch.ids, predicted, logits)
        # Plain lists from here on: per-element tensor indexing costs more than the work.
        positions, scores, deltas = [p.tolist() for p in positions], scores.tolist(), deltas.tolist()
        names = self.labels.classes
        explanations = []
        for b, (tokens, target) in enumerate(zip(batch.tokens, predicted, strict=True)):
            length = len(tokens)
            picked = Counter(window(position, size, length)
                             for size, per_width in zip(self.sizes, positions, strict=True)
                             for position in per_width[b])
            del picked[(0, 0)]  # an empty headline's one position covers no token
            word_scores = scores[b][:length]
            by_span = span_scores(picked, word_scores)
            explanations.append({
                "tokens": tokens,
                "explained_class": names[target],
                "ngrams": rank_spans(tokens, picked, by_span, self.lengths, +1),
                "opposing_ngrams": rank_spans(tokens, picked, by_span, self.lengths, -1),
                "token_scores": [round(s, 6) for s in word_scores],
                "delta": round(deltas[b], 6),
                "ig_steps": self.ig_steps,
            })
        return explanations
    def _token_scores(self, ids: torch.Tensor, predicted: list[int],
                      logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrated Gradients per token [N, L] and convergence deltas [N], on the CPU.

        This is exactly LayerIntegratedGradients on `model.embeddings` with the all-PAD
        baseline (a test checks it), run as plain IntegratedGradients on the embeddings we
        look up once: that skips the two extra forward passes LayerIntegratedGradients
        makes to read the layer, and the two it makes for the delta, which we compute from
        the `logits` the caller already has (delta = sum of scores - (logit(headline) -
        logit(all PAD)), Captum's definition). Inference mode is switched off locally
        because a caller (a TorchServe handler) may run us inside it, where no gradient can
        be taken; it is restored on exit.
        """
        target = torch.as_tensor(predicted, device=ids.device)
        with torch.inference_mode(False), torch.enable_grad():
            inputs = ids.clone()  # a normal tensor even if `ids` was made in inference mode
            with torch.no_grad():
                embedded = self.model.embeddings(inputs)
                pad = torch.full_like(inputs, self.model.config.padding_idx)
                baseline = self.model.embeddings(pad)
                # Every all-PAD headline scores the same: its mask keeps one position.
                baseline_logits = self.model(pad[:1])
            attributions = self._integrated_gradients(embedded, baseline, target,
                                                      self.model.position_mask(inputs))
        scores = attributions.sum(dim=2).detach()
        change = (logits - baseline_logits).gather(1, target.unsqueeze(1)).squeeze(1)
        return scores.cpu(), (scores.sum(dim=1) - change).cpu()

    def _integrated_gradients(self, embedded: torch.Tensor, baseline: torch.Tensor,
                              target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Integrated Gradients [N, L, C] of the `target` logits w.r.t. the embeddings.

        Captum's `IntegratedGradients(..., method="riemann_middle")`, written out: the
        gradients at the midpoints of `ig_steps` equal segments of the straight path from
        `baseline` to `embedded`, averaged and scaled by `embedded - baseline`. All steps
        of the headlines go through one forward and one backward pass (`explain` hands
        over chunks of at most MAX_IG_CELLS positions in all); doing it here saves Captum's
        per-call bookkeeping, a quarter of an explanation's cost at this model's size (a
        test compares it with Captum).
        """
        steps, (n, *shape) = self.ig_steps, embedded.shape
        alphas = (torch.arange(steps, dtype=embedded.dtype, device=embedded.device) + 0.5) / steps
        # [steps * n, L, C], step-major: row k * n + i is headline i at alphas[k].
        path = (baseline + alphas.view(-1, 1, 1, 1) * (embedded - baseline)).reshape(steps * n, *shape)
        path.requires_grad_(True)
        logits = self.model.from_embedded(path, mask.repeat(steps, 1, 1))
        chosen = logits.gather(1, target.repeat(steps).unsqueeze(1)).sum()
        (grads,) = torch.autograd.grad(chosen, path)
        return grads.view(steps, n, *shape).mean(dim=0) * (embedded - baseline)
