"""Comprehensiveness: the drop when the top-scored words go, against random words and
against the best k words."""
import itertools
import json
import shutil

import torch

import training.faithfulness as faithfulness_module
from model.encoders import pad_sequences
from model.explain import Explainer
from model.predictor import Predictor
from training.faithfulness import faithfulness, main

HEADLINES = ["stocks market oil prices rally", "rocket space software week",
             "tennis league cup final starts", "election"]


def _headline(batch, probs, row):
    """A headline's token ids, predicted class and its probability."""
    target = int(probs[row].argmax())
    return batch.ids[row][:len(batch.tokens[row])].tolist(), target, probs[row, target].item()


def _drop(predictor, batch, probs, row, gone):
    """The drop in the headline's class probability when the words at `gone` are deleted."""
    ids, target, full = _headline(batch, probs, row)
    kept = torch.from_numpy(pad_sequences([[t for j, t in enumerate(ids) if j not in gone]], min_length=3))
    return full - predictor.probabilities(kept)[0, target].item()


def _top_k(explanation, k):
    scores = explanation["token_scores"]
    return sorted(range(len(scores)), key=lambda j: -scores[j])[:k]


def _exhaustive_best(predictor, batch, probs, row, k):
    return max(_drop(predictor, batch, probs, row, gone)
               for gone in itertools.combinations(range(len(batch.tokens[row])), k))


def _greedy_best(predictor, batch, probs, row, k):
    gone = []
    for _ in range(k):
        rest = [j for j in range(len(batch.tokens[row])) if j not in gone]
        gone.append(max(rest, key=lambda j: _drop(predictor, batch, probs, row, [*gone, j])))
    return _drop(predictor, batch, probs, row, gone)


def _explained(predictor, batch, probs):
    return Explainer(predictor.model, predictor.labels).explain(batch, probs.argmax(1).tolist())


def test_top_k_drop_matches_deleting_the_highest_scored_words(tiny_artifacts):
    predictor = Predictor.from_dir(tiny_artifacts)
    report = faithfulness(predictor, HEADLINES, ks=(1, 2))["by_k"]
    # The one-word headline has nothing left to compare at k=1: it is left out.
    assert report["1"]["headlines"] == 3 and report["2"]["headlines"] == 3

    batch = predictor.encode(HEADLINES[:3])
    probs = predictor.probabilities(batch.ids)
    explained = _explained(predictor, batch, probs)
    drops = [_drop(predictor, batch, probs, row, _top_k(explained[row], 1)) for row in range(3)]
    assert abs(report["1"]["top"] - sum(drops) / 3) < 1e-4


def _kept_drop(predictor, batch, probs, row, kept):
    """The drop in the headline's class probability when only the words at `kept` remain."""
    return _drop(predictor, batch, probs, row, [j for j in range(len(batch.tokens[row])) if j not in kept])


def test_each_side_deletes_and_keeps_its_top_items(tiny_artifacts):
    """Both explanations, both sides: k=1 deletes (comprehensiveness) or keeps alone
    (sufficiency) the side's top item; `raised` counts the headlines whose probability rose."""
    predictor = Predictor.from_dir(tiny_artifacts)
    texts = [f"{a} {b} {c} {d}" for a in ("stocks", "rocket", "tennis") for b in ("oil", "space", "cup")
             for c in ("week", "final") for d in ("vote", "prices")]
    report = faithfulness(predictor, texts, ks=(1,))
    batch = predictor.encode(texts)
    probs = predictor.probabilities(batch.ids)
    explained = _explained(predictor, batch, probs)

    def top_words(explanation, sign):
        scores = explanation["token_scores"]
        ranked = sorted((j for j in range(len(scores)) if scores[j] * sign > 0),
                        key=lambda j: -abs(scores[j]))
        return set(ranked[:1])

    def top_ngram(explanation, key):
        entries = [e for top in explanation[key].values() if top for e in (top, *top["runners_up"])]
        best = min(entries, key=lambda e: (-abs(e["score"]), e["start"], e["end"]), default=None)
        return set(range(best["start"], best["end"])) if best else set()

    tops = {"words_against": lambda e: top_words(e, -1),
            "ngrams_for": lambda e: top_ngram(e, "ngrams"),
            "ngrams_against": lambda e: top_ngram(e, "opposing_ngrams")}
    for side, top in tops.items():
        rows = [(row, top(e)) for row, e in enumerate(explained) if 0 < len(top(e)) < len(batch.tokens[row])]
        assert rows, side  # the check below must see some headlines
        deleted = [_drop(predictor, batch, probs, row, gone) for row, gone in rows]
        kept = [_kept_drop(predictor, batch, probs, row, gone) for row, gone in rows]
        entry = report[side]["1"]
        assert entry["headlines"] == len(rows), side
        assert abs(entry["top"] - sum(deleted) / len(rows)) < 1e-4, side
        assert abs(entry["sufficiency"]["top"] - sum(kept) / len(rows)) < 1e-4, side
        assert abs(entry["raised"] - sum(d < 0 for d in deleted) / len(rows)) < 1e-4, side


def test_best_is_the_largest_drop_of_any_k_words(tiny_artifacts, monkeypatch):
    # Chunks of 2 rows: the minimum of a headline's deletions spans several forward passes.
    monkeypatch.setattr(faithfulness_module, "CHUNK", 2)
    predictor = Predictor.from_dir(tiny_artifacts)
    report = faithfulness(predictor, HEADLINES, ks=(1, 2))["by_k"]
    batch = predictor.encode(HEADLINES[:3])
    probs = predictor.probabilities(batch.ids)
    explained = _explained(predictor, batch, probs)
    for k in (1, 2):
        best = [_exhaustive_best(predictor, batch, probs, row, k) for row in range(3)]
        top = [_drop(predictor, batch, probs, row, _top_k(explained[row], k)) for row in range(3)]
        assert abs(report[str(k)]["best"] - sum(best) / 3) < 1e-4, k
        assert abs(report[str(k)]["share_of_best"] - sum(top) / sum(best)) < 1e-3, k


def test_headlines_with_too_many_deletions_get_the_greedy_search(tiny_artifacts, monkeypatch):
    monkeypatch.setattr(faithfulness_module, "MAX_DELETIONS", 3)
    predictor = Predictor.from_dir(tiny_artifacts)
    # Headlines of different lengths searched greedily together (each has its own options).
    texts = ["rocket space software week", "stocks market oil prices rally", "oil prices rally week",
             "election vote week", "tennis cup"]
    report = faithfulness(predictor, texts, ks=(1, 2))["by_k"]
    batch = predictor.encode(texts)
    probs = predictor.probabilities(batch.ids)
    # k = 1: greedy tries every single word, so it finds the best too.
    best_1 = [_exhaustive_best(predictor, batch, probs, row, 1) for row in range(5)]
    assert abs(report["1"]["best"] - sum(best_1) / 5) < 1e-4
    # k = 2: headlines of 4 and 5 words (6 and 10 pairs) get the greedy pair, or their top-2
    # IG words' drop when larger; the 3-word one (3 pairs) is searched exhaustively; the
    # 2-word one has nothing left at k = 2 and is left out.
    explained = _explained(predictor, batch, probs)
    expected = [max(_greedy_best(predictor, batch, probs, row, 2),
                    _drop(predictor, batch, probs, row, _top_k(explained[row], 2))) for row in range(3)]
    expected.append(_exhaustive_best(predictor, batch, probs, 3, 2))
    assert report["2"]["headlines"] == 4
    assert abs(report["2"]["best"] - sum(expected) / 4) < 1e-4


def test_the_confidence_bins_hold_every_headline_once_and_average_to_the_whole(tiny_artifacts):
    predictor = Predictor.from_dir(tiny_artifacts)
    texts = [f"{a} {b} {c}" for a in ("stocks", "rocket", "tennis", "election") for b in
             ("oil", "space", "cup", "vote", "prices") for c in ("week", "final", "rally")]
    for k, entry in faithfulness(predictor, texts, ks=(1, 2))["by_k"].items():
        bins = entry["by_confidence"]
        assert sum(b["headlines"] for b in bins) == entry["headlines"], k
        for measure in ("top", "best"):
            weighted = sum(b[measure] * b["headlines"] for b in bins if b["headlines"]) / entry["headlines"]
            assert abs(weighted - entry[measure]) < 1e-3, (k, measure)


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
