"""Why the CNN predicted what it did: the n-grams its filters picked, and a score per word.

Two ideas, one per function:

* `compute_filter_thresholds` (run once after training, saved as filter_thresholds.json)
  follows Jacovi et al., "Understanding Convolutional Neural Networks for Text
  Classification" (BlackboxNLP 2018): a filter's max-pooled pick only carries information
  when its activation is high enough. Each filter gets a class (the one the layers after
  pooling favour when the filter's pooled value rises) and a threshold: the lowest
  activation such that, on the training examples, the picks at or above it belong to that
  class with at least `purity` precision. Filters that are never that pure get no
  threshold (stored as null, read as +inf) and never count.
* `Explainer.explain` reports, per headline, the n-gram that most informative filters of
  each width picked (the interpretability idea of the seed, Made-With-ML's "Embeddings"
  lesson, with "same" padding mapped back to
  tokens), counting as the reason only the filters whose class is the predicted one (the
  n-grams of filters that favour another class are reported apart, as arguing against),
  each token's signed Integrated Gradients score towards the predicted class
  (what Captum's LayerIntegratedGradients on the embeddings gives, all-PAD baseline) with its
  convergence delta, and a small per-token activation summary for heatmaps.

Every number depends only on the headline itself, never on what it was batched with:
positions past a headline are masked exactly as the model's own max-pool masks them.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import torch

from model.cnn import CNN, same_padding
from model.encoders import LabelEncoder
from model.predictor import EncodedBatch, row_chunks

# How the class of a filter is read off the fully connected layers; saved in the JSON so a
# reader knows what "class" means.
LINEARISATION = "W2 @ diag(p) @ W1, p = share of examples where each fc1 unit is active"
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
RUNNERS_UP = 2


def _pooled_with_positions(model: CNN, ids: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
    """Per width: conv maps [N, F, L], max-pooled values [N, F] and picked positions [N, F]."""
    maps = model.feature_maps(ids)
    mask = model.position_mask(ids)
    values, positions = zip(*(m.masked_fill(~mask, float("-inf")).max(dim=2) for m in maps), strict=True)
    return maps, list(values), list(positions)


def filter_classes(model: CNN, pooled: torch.Tensor) -> torch.Tensor:
    """The class each pooled feature pushes up most: argmax over classes, [features].

    The head is fc1 -> ReLU -> fc2, so there is no single weight from a filter to a class.
    We use the head's average Jacobian over the given examples: d logits / d pooled =
    W2 diag(relu'(h)) W1, averaged, is W2 diag(p) W1 with p the share of examples in which
    each hidden unit is active. Plain W2 @ W1 would let hidden units that are (almost)
    never active decide a filter's class.
    """
    with torch.inference_mode():
        active = (model.fc1(pooled) > 0).float().mean(dim=0)  # [hidden]
        effective = model.fc2.weight @ (active.unsqueeze(1) * model.fc1.weight)  # [classes, features]
    return effective.argmax(dim=0)


def _purity_threshold(values: torch.Tensor, agrees: torch.Tensor, purity: float,
                      min_support: int) -> tuple[float | None, float | None, int]:
    """Lowest activation t such that picks >= t agree with the class at least `purity` of
    the time, over at least `min_support` picks; (threshold, precision, support)."""
    order = torch.argsort(values, descending=True, stable=True)
    ranked = values[order]
    hits = agrees[order].double().cumsum(0)
    counts = torch.arange(1, len(ranked) + 1, dtype=torch.float64)
    precision = hits / counts
    # A cut can only fall after the last of equal values: ">= t" takes all of them.
    group_end = torch.ones(len(ranked), dtype=torch.bool)
    group_end[:-1] = ranked[:-1] != ranked[1:]
    ok = group_end & (precision >= purity) & (counts >= min_support)
    if not ok.any():
        return None, None, 0
    last = int(torch.nonzero(ok).max())
    return float(ranked[last]), round(float(precision[last]), 4), last + 1


def compute_filter_thresholds(model: CNN, ids: torch.Tensor, labels: torch.Tensor,
                              purity: float = 0.6, min_support: int = 20,
                              chunk_size: int = 1024) -> dict:
    """Each filter's class and activation threshold (Jacovi et al. 2018), JSON-ready.

    `ids` are encoded headlines [N, L] (right-padded with PAD), `labels` their true class
    indices [N]; use the training split. A filter's threshold is the lowest max-pooled
    activation t such that the examples whose pick is >= t have the filter's class with
    precision >= `purity`, counting at least `min_support` examples (so that a few lucky
    picks do not make a noisy filter look pure); null when no such t exists.
    Returns {"purity", "min_support", "linearisation", "num_examples", "widths": {"1":
    {"class": [...], "threshold": [...], "precision": [...], "support": [...]}, ...}}.
    """
    if not 0 < purity <= 1:
        raise ValueError(f"purity must be in (0, 1], got {purity}")
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    if ids.shape[0] != labels.shape[0]:
        raise ValueError(f"{ids.shape[0]} headlines but {labels.shape[0]} labels")
    sizes = model.config.filter_sizes
    pooled_chunks: list[list[torch.Tensor]] = [[] for _ in sizes]
    with torch.inference_mode():
        for start in range(0, ids.shape[0], chunk_size):
            chunk = ids[start:start + chunk_size]
            # Drop columns that are padding for the whole chunk: cheaper, same result.
            width = max(int((chunk != model.config.padding_idx).sum(1).max()), model.config.max_filter_size)
            _, values, _ = _pooled_with_positions(model, chunk[:, :width])
            for i, v in enumerate(values):
                pooled_chunks[i].append(v.cpu())
    pooled = [torch.cat(c) for c in pooled_chunks]  # per width [N, F]
    classes = filter_classes(model, torch.cat(pooled, dim=1).to(next(model.parameters()).device)).cpu()

    widths = {}
    num_filters = model.config.num_filters
    for i, size in enumerate(sizes):
        entry = {"class": [], "threshold": [], "precision": [], "support": []}
        for j in range(num_filters):
            cls = int(classes[i * num_filters + j])
            threshold, precision, support = _purity_threshold(
                pooled[i][:, j], labels == cls, purity, min_support)
            entry["class"].append(cls)
            entry["threshold"].append(threshold)
            entry["precision"].append(precision)
            entry["support"].append(support)
        widths[str(size)] = entry
    return {"purity": purity, "min_support": min_support, "linearisation": LINEARISATION,
            "num_examples": int(ids.shape[0]), "widths": widths}


def _counts(positions: list[int], length: int) -> list[int]:
    """How many of `positions` fall on each of 0 .. length - 1."""
    counts = [0] * length
    for position in positions:
        if position < length:
            counts[position] += 1
    return counts


def window(position: int, filter_size: int, length: int) -> tuple[int, int]:
    """Tokens [start, end) that output `position` of a "same"-padded filter covers, clipped
    to a headline of `length` tokens (the padding columns hold no token)."""
    left, _ = same_padding(filter_size)
    return max(0, position - left), min(length, position - left + filter_size)


class Explainer:
    """Explains a batch of encoded headlines with one model shared with the predictor."""

    def __init__(self, model: CNN, labels: LabelEncoder, thresholds: dict | None,
                 ig_steps: int = DEFAULT_IG_STEPS) -> None:
        if ig_steps < 2:
            raise ValueError(f"ig_steps must be at least 2, got {ig_steps}")
        self.model = model.eval()
        self.labels = labels
        self.ig_steps = ig_steps
        self.sizes = list(model.config.filter_sizes)
        device = next(model.parameters()).device
        # Per width: threshold per filter (+inf: never informative; -inf: count every filter).
        self.thresholds = [torch.full((model.config.num_filters,), float("-inf"), device=device)
                           for _ in self.sizes]
        self.filter_classes: list[list[int]] | None = None  # per width, per filter
        if thresholds is not None:
            self._load_thresholds(thresholds, device)
        self.selection = "all" if thresholds is None else "informative"

    def _load_thresholds(self, thresholds: dict, device: torch.device) -> None:
        widths = thresholds.get("widths", {}) if isinstance(thresholds, dict) else {}
        expected = {str(s) for s in self.sizes}
        if set(widths) != expected:
            raise ValueError(f"filter thresholds are for widths {sorted(widths)}, the model has "
                             f"{sorted(expected)}: recompute them for this model")
        self.filter_classes = []
        for i, size in enumerate(self.sizes):
            entry = widths[str(size)]
            if not isinstance(entry, dict) or not {"class", "threshold"} <= entry.keys():
                raise ValueError(f"filter thresholds for width {size} lack 'class' and 'threshold': "
                                 "recompute them with compute_filter_thresholds")
            if len(entry["threshold"]) != self.model.config.num_filters:
                raise ValueError(f"width {size} has {len(entry['threshold'])} thresholds, the model "
                                 f"{self.model.config.num_filters} filters: recompute them")
            self.thresholds[i] = torch.tensor(
                [float("inf") if t is None else t for t in entry["threshold"]], device=device)
            self.filter_classes.append([int(c) for c in entry["class"]])

    def explain(self, batch: EncodedBatch, predicted: list[int]) -> list[dict]:
        """One explanation per headline of `batch`, towards its class in `predicted`.

        A headline the predictor abstains on (no known word, `EncodedBatch.abstentions`)
        gets only `tokens`, `explained_class: None` and `abstained` (the reason): there is
        nothing to explain, so no n-grams and no scores; its entry in `predicted` is ignored.

        Every other headline's dict holds: `tokens`; `filter_selection` ("informative":
        only picks at or above their filter's threshold count, "all": no thresholds were
        given, every filter counts); `ngrams` per width ("1", "2", "3"): the reason, from
        the counted filters that favour the predicted class only: the n-gram most of them
        picked, its tokens [start, end), how many of them picked it (`filters`), how many
        there are (`counted_filters`), and runner-ups; `opposing_ngrams` per width: the same
        from the counted filters that favour another class, each n-gram with `favours`
        ({class: filters}); `token_scores`: signed Integrated Gradients attribution of each
        token to the predicted class's logit (negative: the word argues against it),
        summing to logit(headline) - logit(all PAD) + `delta`; `activations` per width: at
        each token position, the highest activation among the counted filters (None when
        no filter of that width counts); `picks` / `opposing_picks` per width: how many
        counted filters favouring / not favouring the predicted class max-pooled at that
        position. Position i of width f is the window over tokens i - left .. i - left + f
        - 1 (left = (f - 1) // 2).

        A filter's class is the one in the filter thresholds (what the head favours on
        average over the training split); without thresholds, the one the head favours for
        this headline (the same linearisation with this headline's own active units).
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
            maps, values, positions = _pooled_with_positions(self.model, batch.ids)
            counted = [v >= t for v, t in zip(values, self.thresholds, strict=True)]  # per width [N, F]
            heat = [m.masked_fill(~c.unsqueeze(2), float("-inf")).amax(dim=1)
                    for m, c in zip(maps, counted, strict=True)]  # per width [N, L]
            pooled = torch.cat(values, dim=1)
            logits = self.model.classify(pooled)
            classes = self._classes_per_headline(pooled)  # per width [N, F]
        scores, deltas = self._token_scores(batch.ids, predicted, logits)
        # Plain lists from here on: per-element tensor indexing costs more than the work.
        positions, counted = [p.tolist() for p in positions], [c.tolist() for c in counted]
        heat, scores, deltas = [h.tolist() for h in heat], scores.tolist(), deltas.tolist()
        names = self.labels.classes
        explanations = []
        for b, (tokens, target) in enumerate(zip(batch.tokens, predicted, strict=True)):
            length = len(tokens)
            ngrams, opposing, activations, picks, opposing_picks = {}, {}, {}, {}, {}
            for i, size in enumerate(self.sizes):
                chosen = [f for f, ok in enumerate(counted[i][b]) if ok]
                favoured = [classes[i][b][f] for f in chosen]
                pairs = list(zip(chosen, favoured, strict=True))
                supporting = [positions[i][b][f] for f, c in pairs if c == target]
                against = [(positions[i][b][f], names[c]) for f, c in pairs if c != target]
                ngrams[str(size)] = self._ngrams(tokens, size, supporting)
                opposing[str(size)] = self._ngrams(tokens, size, [p for p, _ in against],
                                                   [c for _, c in against])
                activations[str(size)] = [None if v == float("-inf") else round(v, 4)
                                          for v in heat[i][b][:length]]
                picks[str(size)] = _counts(supporting, length)
                opposing_picks[str(size)] = _counts([p for p, _ in against], length)
            explanations.append({
                "tokens": tokens,
                "explained_class": names[target],
                "filter_selection": self.selection,
                "ngrams": ngrams,
                "opposing_ngrams": opposing,
                "token_scores": [round(s, 6) for s in scores[b][:length]],
                "delta": round(deltas[b], 6),
                "ig_steps": self.ig_steps,
                "activations": activations,
                "picks": picks,
                "opposing_picks": opposing_picks,
            })
        return explanations

    def _classes_per_headline(self, pooled: torch.Tensor) -> list[list[list[int]]]:
        """Per width, per headline, per filter: the class the filter favours.

        With thresholds: the saved class, the same for every headline. Without: what
        `filter_classes` gives with this headline alone as the examples, i.e. the head's
        Jacobian at this headline, so that the answer never depends on the batch.
        """
        count = pooled.shape[0]
        if self.filter_classes is not None:
            return [[list(per_filter)] * count for per_filter in self.filter_classes]
        active = (self.model.fc1(pooled) > 0).to(pooled.dtype)  # [N, hidden]
        effective = torch.einsum("ch,nh,hf->ncf", self.model.fc2.weight, active, self.model.fc1.weight)
        local = effective.argmax(dim=1).split(self.model.config.num_filters, dim=1)  # per width [N, F]
        return [c.tolist() for c in local]

    @staticmethod
    def _ngrams(tokens: list[str], size: int, picked: list[int],
                favours: list[str] | None = None) -> dict:
        """Group filters' picks by the tokens they cover; the most picked wins. With
        `favours` (each filter's class), every n-gram says which classes its filters favour."""
        votes: dict[tuple[int, int], list[str | None]] = defaultdict(list)
        for position, cls in zip(picked, favours or [None] * len(picked), strict=True):
            start, end = window(position, size, len(tokens))
            if start < end:  # an empty headline's only position covers no token
                votes[(start, end)].append(cls)
        ranked = sorted(votes.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        found = []
        for (start, end), classes in ranked:
            entry = {"ngram": " ".join(tokens[start:end]), "start": start, "end": end,
                     "filters": len(classes)}
            if favours is not None:
                counts = Counter(classes)
                entry["favours"] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            found.append(entry)
        best = found[0] if found else {"ngram": None, "start": None, "end": None, "filters": 0}
        return {**best, "counted_filters": len(picked), "runners_up": found[1:1 + RUNNERS_UP]}

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
