"""Comprehensiveness: the drop when the top-scored words go, against random words."""
import torch

from model.encoders import pad_sequences
from model.explain import Explainer
from model.predictor import Predictor
from training.faithfulness import comprehensiveness

HEADLINES = ["stocks market oil prices rally", "rocket space software week",
             "tennis league cup final starts", "election"]


def test_top_k_drop_matches_deleting_the_highest_scored_words(tiny_artifacts):
    predictor = Predictor.from_dir(tiny_artifacts)
    report = comprehensiveness(predictor, HEADLINES, ks=(1, 2))["by_k"]
    # The one-word headline has nothing left to compare at k=1: it is left out.
    assert report["1"]["headlines"] == 3 and report["2"]["headlines"] == 3

    batch = predictor.encode(HEADLINES[:3])
    probs = predictor.probabilities(batch.ids)
    predicted = probs.argmax(dim=1).tolist()
    explained = Explainer(predictor.model, predictor.labels, None).explain(batch, predicted)
    drops = []
    for row, (explanation, target) in enumerate(zip(explained, predicted, strict=True)):
        scores = explanation["token_scores"]
        best = max(range(len(scores)), key=scores.__getitem__)
        kept = [t for j, t in enumerate(batch.ids[row][:len(scores)].tolist()) if j != best]
        ids = torch.from_numpy(pad_sequences([kept], min_length=3))
        drops.append(probs[row, target].item() - predictor.probabilities(ids)[0, target].item())
    assert abs(report["1"]["top"] - sum(drops) / 3) < 1e-4
