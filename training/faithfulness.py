"""Faithfulness of the word scores: comprehensiveness, as in ERASER (DeYoung et al., 2020).

Comprehensiveness of a headline at k = p(c | headline) - p(c | headline without its k words
with the highest Integrated Gradients score towards c), c the predicted class. A faithful
score makes that drop larger than deleting k random words of the same headline. Headlines
are short (about 6 words after preprocessing), so k counts words (1, 2, 3), not shares, and
a headline counts at k only when it has more than k words.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from model.encoders import pad_sequences
from model.explain import Explainer
from model.predictor import Predictor

TOP_K = (1, 2, 3)


def _class_probability(predictor: Predictor, sequences: list[list[int]], classes: list[int]) -> np.ndarray:
    ids = pad_sequences(sequences, min_length=predictor.model.config.max_filter_size)
    probs = predictor.probabilities(torch.from_numpy(ids).to(predictor.device))
    return probs[torch.arange(len(classes)), torch.as_tensor(classes)].numpy()


def comprehensiveness(predictor: Predictor, texts: Sequence[str], ks: Sequence[int] = TOP_K,
                      seed: int = 0) -> dict:
    """Mean comprehensiveness of the top-k IG-scored words and of k random words, per k."""
    batch = predictor.encode(list(texts))
    probs = predictor.probabilities(batch.ids)
    predicted = probs.argmax(dim=1).tolist()
    explanations = Explainer(predictor.model, predictor.labels, thresholds=None).explain(batch, predicted)
    rng = np.random.default_rng(seed)
    rows = batch.ids.cpu().numpy()
    report = {}
    for k in ks:
        keep = [i for i, e in enumerate(explanations) if len(e.get("token_scores") or ()) > k]
        top, random = [], []
        for i in keep:
            scores = np.asarray(explanations[i]["token_scores"])
            sequence = rows[i][:len(scores)].tolist()
            drop_top = set(np.argsort(-scores, kind="stable")[:k].tolist())
            drop_random = set(rng.choice(len(scores), size=k, replace=False).tolist())
            top.append([t for j, t in enumerate(sequence) if j not in drop_top])
            random.append([t for j, t in enumerate(sequence) if j not in drop_random])
        if not keep:
            report[str(k)] = {"headlines": 0, "top": None, "random": None}
            continue
        target = [predicted[i] for i in keep]
        full = probs[torch.as_tensor(keep), torch.as_tensor(target)].numpy()
        report[str(k)] = {
            "headlines": len(keep),
            "top": round(float(np.mean(full - _class_probability(predictor, top, target))), 4),
            "random": round(float(np.mean(full - _class_probability(predictor, random, target))), 4),
        }
    return {"measure": "comprehensiveness (ERASER), Integrated Gradients word scores",
            "by_k": report}
