"""Comprehensiveness: the drop when the top-scored words go, against random words."""
import json
import shutil

import torch

from model.encoders import pad_sequences
from model.explain import Explainer
from model.predictor import Predictor
from training.faithfulness import comprehensiveness, main

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


def test_the_confidence_bins_hold_every_headline_once_and_average_to_the_whole(tiny_artifacts):
    predictor = Predictor.from_dir(tiny_artifacts)
    texts = [f"{a} {b} {c}" for a in ("stocks", "rocket", "tennis", "election") for b in
             ("oil", "space", "cup", "vote", "prices") for c in ("week", "final", "rally")]
    for k, entry in comprehensiveness(predictor, texts, ks=(1, 2))["by_k"].items():
        bins = entry["by_confidence"]
        assert sum(b["headlines"] for b in bins) == entry["headlines"], k
        weighted = sum(b["top"] * b["headlines"] for b in bins if b["headlines"]) / entry["headlines"]
        assert abs(weighted - entry["top"]) < 1e-3, k


def test_the_command_prints_each_directorys_report_and_names_a_bad_file(tiny_artifacts, tmp_path, capsys):
    data = tmp_path / "dev.csv"
    data.write_text("title,category\n" + "".join(f"{t},Business\n" for t in HEADLINES))
    assert main([str(tiny_artifacts), "--data", str(data)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[str(tiny_artifacts)]["by_k"]["1"]["headlines"] == 3
    assert main([str(tiny_artifacts), "--data", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(tiny_artifacts, broken)
    (broken / "model.pt").write_bytes((broken / "model.pt").read_bytes()[:100])  # truncated
    assert main([str(tiny_artifacts), str(broken), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken}:") and err.count("\n") == 1
