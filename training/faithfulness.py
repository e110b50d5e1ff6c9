"""Faithfulness of the word scores: comprehensiveness, as in ERASER (DeYoung et al., 2020).

Comprehensiveness of a headline at k = p(c | headline) - p(c | headline without its k words
with the highest Integrated Gradients score towards c), c the predicted class. A faithful
score makes that drop larger than deleting k random words of the same headline. Headlines
are short (about 6 words after preprocessing), so k counts words (1, 2, 3), not shares, and
a headline counts at k only when it has more than k words.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from model.encoders import pad_sequences
from model.explain import Explainer
from model.predictor import Predictor

TOP_K = (1, 2, 3)
# Headlines per forward pass: the test split of a large data set in one batch would hold every
# headline's feature maps (and, for explanations, its Integrated Gradients path) at once.
CHUNK = 512


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
            top.append([t for j, t in enumerate(sequence) if j not in drop_top])
            random.append([t for j, t in enumerate(sequence) if j not in drop_random])
        if not keep:
            report[str(k)] = {"headlines": 0, "top": None, "random": None}
            continue
        target = [predicted[i] for i in keep]
        full = np.asarray([full_probability[i] for i in keep], dtype=np.float32)
        report[str(k)] = {
            "headlines": len(keep),
            "top": round(float(np.mean(full - _class_probability(predictor, top, target))), 4),
            "random": round(float(np.mean(full - _class_probability(predictor, random, target))), 4),
        }
    return {"measure": "comprehensiveness (ERASER), Integrated Gradients word scores",
            "by_k": report}
