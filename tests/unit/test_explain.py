"""Explanations: n-gram positions and signs on hand-set weights, Integrated Gradients
completeness and target, independence from batch composition."""
from __future__ import annotations

import pytest
import torch
from captum.attr import LayerIntegratedGradients

from model.cnn import CNN
from model.config import ModelConfig
from model.encoders import LabelEncoder
from model.explain import IG_METHOD, Explainer, window
from model.predictor import NO_KNOWN_WORDS, EncodedBatch

VOCAB = 12
TARGET_WORD = 5  # the word the hand-set filters fire on
LABELS = LabelEncoder(["neg", "pos"])


def one_hot_cnn(num_filters: int = 1) -> CNN:
    """A CNN whose embeddings are one-hot (PAD = zero) and whose weights are all zero."""
    config = ModelConfig(vocab_size=VOCAB, num_classes=2, embedding_dim=VOCAB,
                         num_filters=num_filters, hidden_dim=3 * num_filters, dropout_p=0.0)
    model = CNN(config)
    with torch.no_grad():
        eye = torch.eye(VOCAB)
        eye[0] = 0
        model.embeddings.load_vectors(eye.numpy())
        for p in list(model.convs.parameters()) + list(model.fc1.parameters()) + list(model.fc2.parameters()):
            p.zero_()
    return model.eval()


def feed(model: CNN, width_index: int, filter_index: int, cls: int) -> None:
    """Make the head linear (every hidden unit active, fc1 the identity) and let one pooled
    feature raise class `cls`'s logit: that filter then favours `cls`."""
    with torch.no_grad():
        model.fc1.weight.copy_(torch.eye(model.fc1.out_features, model.fc1.in_features))
        model.fc1.bias.fill_(1.0)
        model.fc2.weight[cls, width_index * model.config.num_filters + filter_index] = 1.0


def batch_of(rows: list[list[int]]) -> EncodedBatch:
    """Right-pad word ids into an EncodedBatch whose tokens are named after the ids."""
    length = max(3, max(len(r) for r in rows))
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return EncodedBatch(ids=ids, tokens=[[f"w{t}" for t in r] for r in rows], unknown=[0] * len(rows))


# Every (filter width, tap the word must sit at, token position of the word) where that
# window exists in a 6-token headline: the first, a middle and the last token.
LENGTH = 6
CASES = [(f, tap, t) for f in (1, 2, 3) for tap in range(f) for t in (0, 2, LENGTH - 1)
         if 0 <= t + (f - 1) // 2 - tap < LENGTH]


@pytest.mark.parametrize("size,tap,position", CASES)
def test_ngram_is_the_window_where_the_filter_fires(size, tap, position):
    model = one_hot_cnn()
    index = model.config.filter_sizes.index(size)
    with torch.no_grad():
        model.convs[index].weight[0, TARGET_WORD, tap] = 1.0  # fires only with the word at `tap`
    feed(model, index, 0, cls=1)  # and argues for the class explained
    words = [2, 3, 4, 6, 7, 8]
    words[position] = TARGET_WORD
    explanation = Explainer(model, LABELS, ig_steps=4).explain(batch_of([words]), [1])[0]

    start, end = max(0, position - tap), min(LENGTH, position - tap + size)
    top = explanation["ngrams"][str(end - start)]  # a window clipped at an edge holds fewer words
    listed = {(e["start"], e["end"]): e for e in (top, *top["runners_up"])}
    assert (start, end) in listed
    ngram = listed[(start, end)]
    assert ngram["ngram"] == " ".join(f"w{w}" for w in words[start:end])
    assert ngram["score"] > 0
    assert ngram["score"] == pytest.approx(explanation["token_scores"][position], abs=1e-6)
    assert ngram["filters"] >= 1
    assert all(entry is None for entry in explanation["opposing_ngrams"].values())  # nothing argues against


def test_window_clips_same_padding_to_the_headline():
    assert window(0, 3, 5) == (0, 2)  # the left padding column holds no token
    assert window(4, 3, 5) == (3, 5)
    assert window(4, 2, 5) == (4, 5)
    assert window(2, 1, 5) == (2, 3)


def tug_of_war_model() -> CNN:
    """Width-1 filter 0 fires hard on w5 and raises "pos"; filter 1 fires on w5 more weakly,
    harder on w6, and raises "neg" while lowering "pos". Every hidden unit is active, so the
    head is linear: alone, w5 adds 2 - 1 = +1 to the "pos" logit."""
    model = one_hot_cnn(num_filters=2)
    with torch.no_grad():
        model.convs[0].weight[0, TARGET_WORD, 0] = 2.0
        model.convs[0].weight[1, TARGET_WORD, 0] = 1.0
        model.convs[0].weight[1, 6, 0] = 1.5
        model.fc1.weight.copy_(torch.eye(6))
        model.fc1.bias.fill_(1.0)
        model.fc2.weight[1, 0] = 1.0  # pooled feature 0 (width 1, filter 0) -> "pos"
        model.fc2.weight[1, 1] = -1.0  # pooled feature 1 (width 1, filter 1) -> against "pos"
        model.fc2.weight[0, 1] = 1.0  # ... and for "neg"
    return model


def test_a_word_whose_for_filter_outweighs_its_against_filter_is_never_listed_against():
    """The n-grams once counted filters by the class they favour: w5, picked by a "neg"
    filter too, was listed against "pos" although it raises "pos". Now a span's sign is what
    its words do, so w5 is for "pos" only, and w6 (picked by the "neg" filter alone) against."""
    explainer = Explainer(tug_of_war_model(), LABELS, ig_steps=4)
    alone, mixed, as_neg = explainer.explain(
        batch_of([[2, TARGET_WORD, 3], [2, TARGET_WORD, 6], [2, 6, 3]]), [1, 1, 0])
    assert alone["ngrams"]["1"]["ngram"] == "w5" and alone["ngrams"]["1"]["score"] > 0
    assert alone["opposing_ngrams"]["1"] is None
    assert mixed["ngrams"]["1"]["ngram"] == "w5"
    assert mixed["opposing_ngrams"]["1"]["ngram"] == "w6" and mixed["opposing_ngrams"]["1"]["score"] < 0
    assert as_neg["ngrams"]["1"]["ngram"] == "w6" and as_neg["opposing_ngrams"]["1"] is None


def listed(explanation: dict, key: str) -> list[dict]:
    """Every n-gram of one side of an explanation: the tops and their runners-up."""
    return [e for top in explanation[key].values() if top for e in (top, *top["runners_up"])]


def test_each_span_has_one_side_and_its_score_is_its_words_sum():
    explainer = Explainer(random_cnn(seed=5), LabelEncoder(list("abcd")), ig_steps=8)
    torch.manual_seed(5)
    rows = [torch.randint(2, 60, (n,)).tolist() for n in (1, 2, 3, 5, 9, 14)]
    for explanation in explainer.explain(batch_of(rows), [0, 1, 2, 3, 0, 1]):
        scores = explanation["token_scores"]
        sides = {key: listed(explanation, key) for key in ("ngrams", "opposing_ngrams")}
        for key, sign in (("ngrams", 1), ("opposing_ngrams", -1)):
            for length, top in explanation[key].items():
                entries = [top, *top["runners_up"]] if top else []
                assert all(e["end"] - e["start"] == int(length) for e in entries)
                sizes = [abs(e["score"]) for e in entries]
                assert sizes == sorted(sizes, reverse=True)
            for e in sides[key]:
                assert e["score"] * sign > 0
                assert e["score"] == pytest.approx(sum(scores[e["start"]:e["end"]]), abs=1e-5)
        spans = [{(e["start"], e["end"]) for e in side} for side in sides.values()]
        assert not spans[0] & spans[1]
        assert explanation["ngrams"].keys() == {"1", "2", "3"}


def random_cnn(seed: int = 0) -> CNN:
    torch.manual_seed(seed)
    model = CNN(ModelConfig(vocab_size=60, num_classes=4, embedding_dim=8, num_filters=6, hidden_dim=10))
    with torch.no_grad():
        model.embeddings.trainable.weight[0].zero_()
    return model.eval()


def test_token_scores_add_up_to_the_predicted_class_logit_change():
    model = random_cnn()
    batch = batch_of([[5, 9, 13, 22, 40], [7, 8]])
    target = [3, 2]  # deliberately not class 0, and not necessarily the argmax
    explanations = Explainer(model, LabelEncoder(list("abcd")), ig_steps=64).explain(batch, target)
    with torch.no_grad():
        logits = model(batch.ids)
        baseline = model(torch.zeros_like(batch.ids))
    for row, (explanation, cls) in enumerate(zip(explanations, target, strict=True)):
        change = float(logits[row, cls] - baseline[row, cls])
        total = sum(explanation["token_scores"])
        assert len(explanation["token_scores"]) == len(batch.tokens[row])
        assert total - explanation["delta"] == pytest.approx(change, abs=1e-4)
        assert abs(explanation["delta"]) < 0.05 * abs(change) + 1e-3
        assert explanation["explained_class"] == "abcd"[cls]


def test_token_scores_are_captums_layer_integrated_gradients_on_the_embeddings():
    model = random_cnn(seed=2)
    batch = batch_of([[5, 9, 13, 22, 40, 41], [7, 8]])
    target = [1, 3]
    explanations = Explainer(model, LabelEncoder(list("abcd")), ig_steps=8).explain(batch, target)
    reference, deltas = LayerIntegratedGradients(model, model.embeddings).attribute(
        batch.ids, baselines=torch.zeros_like(batch.ids), target=target, n_steps=8,
        method=IG_METHOD, return_convergence_delta=True)
    for row, explanation in enumerate(explanations):
        length = len(batch.tokens[row])
        assert explanation["token_scores"] == pytest.approx(reference[row, :length].sum(1).tolist(), abs=1e-5)
        assert explanation["delta"] == pytest.approx(float(deltas[row]), abs=1e-5)


def test_explaining_alone_or_in_a_padded_batch_gives_the_same_answer():
    model = random_cnn(seed=1)
    explainer = Explainer(model, LabelEncoder(list("abcd")), ig_steps=8)
    short = [4, 17, 30]
    alone = explainer.explain(batch_of([short]), [2])[0]
    mixed = explainer.explain(batch_of([list(range(10, 30)), short]), [1, 2])[1]
    for key in ("tokens", "explained_class"):
        assert alone[key] == mixed[key]
    assert alone["token_scores"] == pytest.approx(mixed["token_scores"], abs=1e-5)
    assert alone["delta"] == pytest.approx(mixed["delta"], abs=1e-5)
    for key in ("ngrams", "opposing_ngrams"):
        assert [(e["start"], e["end"], e["filters"]) for e in listed(alone, key)] == \
            [(e["start"], e["end"], e["filters"]) for e in listed(mixed, key)]
        assert [e["score"] for e in listed(alone, key)] == \
            pytest.approx([e["score"] for e in listed(mixed, key)], abs=1e-5)


def test_explain_runs_inside_inference_mode_and_leaves_grad_mode_alone():
    model = random_cnn()
    explainer = Explainer(model, LabelEncoder(list("abcd")), ig_steps=4)
    with torch.inference_mode():
        batch = batch_of([[5, 6, 7]])  # ids made in inference mode, as a handler would
        explanation = explainer.explain(batch, [1])[0]
        assert not torch.is_grad_enabled()
    assert len(explanation["token_scores"]) == 3
    assert all(p.grad is None for p in model.parameters())


def test_headlines_without_a_known_word_are_not_explained_and_leave_the_others_alone():
    explainer = Explainer(random_cnn(), LabelEncoder(list("abcd")), ig_steps=4)
    ids = torch.tensor([[5, 9, 13], [0, 0, 0], [1, 1, 0]])  # readable, empty, all UNK
    batch = EncodedBatch(ids=ids, tokens=[["w5", "w9", "w13"], [], ["zz", "qq"]], unknown=[0, 0, 2])
    readable, empty, unknown = explainer.explain(batch, [2, 0, 0])
    abstained = {"explained_class": None, "abstained": NO_KNOWN_WORDS}
    assert empty == {"tokens": [], **abstained}
    assert unknown == {"tokens": ["zz", "qq"], **abstained}
    alone = explainer.explain(batch_of([[5, 9, 13]]), [2])[0]
    assert readable["ngrams"] == alone["ngrams"] and readable["explained_class"] == "c"
    assert readable["token_scores"] == pytest.approx(alone["token_scores"], abs=1e-6)


def test_explanations_in_chunks_equal_one_pass(monkeypatch):
    """Big batches are explained in chunks of at most MAX_IG_CELLS interpolated positions;
    no number may depend on the chunking."""
    import model.explain as explain_module

    torch.manual_seed(3)
    model = CNN(ModelConfig(vocab_size=40, num_classes=4, embedding_dim=6, num_filters=4))
    ids = torch.randint(2, 40, (5, 7))
    ids[1, 4:] = 0
    batch = EncodedBatch(ids=ids, tokens=[[f"w{i}" for i in range(7)]] * 5, unknown=[0] * 5)
    explainer = Explainer(model, LabelEncoder(["a", "b", "c", "d"]), ig_steps=4)
    whole = explainer.explain(batch, [0, 1, 2, 3, 0])
    monkeypatch.setattr(explain_module, "MAX_IG_CELLS", 4 * 14)  # 2 headlines of 7 x 4 steps
    chunked = explainer.explain(batch, [0, 1, 2, 3, 0])
    for a, b in zip(whole, chunked, strict=True):
        assert a["token_scores"] == pytest.approx(b["token_scores"], abs=1e-5)
        assert a["delta"] == pytest.approx(b["delta"], abs=1e-5)
        assert {k: v for k, v in a.items() if k not in ("token_scores", "delta")} == \
            {k: v for k, v in b.items() if k not in ("token_scores", "delta")}


def test_no_pass_of_an_explanation_exceeds_its_positions_whatever_the_batch(monkeypatch):
    """Memory per pass must not grow with what a client sends: every forward pass inside
    `explain` (filters and Integrated Gradients) sees at most MAX_IG_CELLS positions."""
    import model.explain as explain_module

    monkeypatch.setattr(explain_module, "MAX_IG_CELLS", 256)
    torch.manual_seed(4)
    model = CNN(ModelConfig(vocab_size=40, num_classes=4, embedding_dim=6, num_filters=4))
    seen = []
    model.convolve = lambda x, convolve=model.convolve: seen.append(x.shape[0] * x.shape[2]) or convolve(x)
    ids = torch.randint(2, 40, (40, 30))
    batch = EncodedBatch(ids=ids, tokens=[[f"w{i}" for i in range(30)]] * 40, unknown=[0] * 40)
    Explainer(model, LabelEncoder(["a", "b", "c", "d"]), ig_steps=4).explain(batch, [0] * 40)
    assert seen and max(seen) <= 256
    assert sum(seen) >= 40 * 30 * (4 + 1)  # every headline went through filters and IG
