"""Explanations: n-gram positions on hand-set weights, filter thresholds on a hand-made set,
Integrated Gradients completeness and target, independence from batch composition."""
from __future__ import annotations

import json

import pytest
import torch
from captum.attr import LayerIntegratedGradients

from model.cnn import CNN
from model.config import ModelConfig
from model.encoders import LabelEncoder
from model.explain import IG_METHOD, Explainer, compute_filter_thresholds, window
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
    explanation = Explainer(model, LABELS, thresholds=None, ig_steps=4).explain(batch_of([words]), [1])[0]

    start, end = max(0, position - tap), min(LENGTH, position - tap + size)
    ngram = explanation["ngrams"][str(size)]
    assert (ngram["start"], ngram["end"]) == (start, end)
    assert ngram["ngram"] == " ".join(f"w{w}" for w in words[start:end])
    assert f"w{TARGET_WORD}" in ngram["ngram"].split()
    assert ngram["filters"] == 1 and ngram["counted_filters"] == 1
    assert explanation["opposing_ngrams"][str(size)]["counted_filters"] == 0
    assert explanation["filter_selection"] == "all"
    assert explanation["picks"][str(size)][position + (size - 1) // 2 - tap] == 1


def test_window_clips_same_padding_to_the_headline():
    assert window(0, 3, 5) == (0, 2)  # the left padding column holds no token
    assert window(4, 3, 5) == (3, 5)
    assert window(4, 2, 5) == (4, 5)
    assert window(2, 1, 5) == (2, 3)


def test_only_filters_above_their_threshold_count():
    model = one_hot_cnn(num_filters=2)
    with torch.no_grad():
        model.convs[0].weight[0, TARGET_WORD, 0] = 1.0  # width 1, filter 0: fires on the word
        model.convs[0].weight[1, 7, 0] = 0.5  # width 1, filter 1: fires weakly on w7
    thresholds = {"widths": {"1": {"class": [1, 1], "threshold": [0.9, 0.9]},
                             "2": {"class": [1, 1], "threshold": [None, None]},
                             "3": {"class": [0, 0], "threshold": [None, None]}}}
    explanation = Explainer(model, LABELS, thresholds, ig_steps=4).explain(
        batch_of([[2, 7, TARGET_WORD, 3]]), [1])[0]
    assert explanation["filter_selection"] == "informative"
    assert explanation["ngrams"]["1"]["ngram"] == f"w{TARGET_WORD}"
    assert explanation["ngrams"]["1"]["counted_filters"] == 1  # w7's pick (0.5) is below 0.9
    assert explanation["opposing_ngrams"]["1"]["counted_filters"] == 0
    assert explanation["ngrams"]["2"]["ngram"] is None and explanation["ngrams"]["2"]["filters"] == 0
    assert explanation["activations"]["2"] == [None] * 4
    assert explanation["activations"]["1"] == [0.0, 0.0, 1.0, 0.0]


def test_thresholds_that_do_not_fit_the_model_are_rejected():
    thresholds = {"widths": {"1": {"class": [0], "threshold": [None]}}}
    with pytest.raises(ValueError, match="recompute"):
        Explainer(one_hot_cnn(), LABELS, thresholds)


def thresholds_model() -> CNN:
    """Width-1 filter 0 fires on w5 and feeds class 1; filter 1 fires on w6 and feeds class 0."""
    model = one_hot_cnn(num_filters=2)
    with torch.no_grad():
        model.convs[0].weight[0, TARGET_WORD, 0] = 1.0
        model.convs[0].weight[1, 6, 0] = 1.0
        model.fc1.weight.copy_(torch.eye(6))
        model.fc1.bias.fill_(1.0)  # every hidden unit active: the head is linear here
        model.fc2.weight[1, 0] = 1.0  # pooled feature 0 (width 1, filter 0) -> class 1
        model.fc2.weight[0, 1] = 1.0  # pooled feature 1 (width 1, filter 1) -> class 0
    return model


def test_a_filter_that_fires_with_its_class_gets_a_threshold_and_a_noisy_one_none():
    rows, labels = [], []
    for i in range(80):
        label = i % 2
        words = [2, 3, 4]
        if label == 1:
            words.append(TARGET_WORD)  # w5 only ever appears in class 1
        if (i // 2) % 2 == 0:
            words.append(6)  # w6 appears in half of each class: no information
        rows.append(words)
        labels.append(label)
    rows.append([6, 6, 2])  # one class-0 headline where w6 fires hardest: a lucky pick
    labels.append(0)
    batch = batch_of(rows)
    result = compute_filter_thresholds(thresholds_model(), batch.ids, torch.tensor(labels),
                                       purity=0.6, min_support=10, chunk_size=16)

    json.dumps(result, allow_nan=False)  # the artifact is plain JSON
    width1 = result["widths"]["1"]
    assert width1["class"] == [1, 0]
    assert width1["threshold"][0] == pytest.approx(1.0)
    assert width1["precision"][0] == 1.0 and width1["support"][0] == 40
    # w6's single top pick is class 0, but it is below min_support; everything else is 50/50.
    assert width1["threshold"][1] is None
    assert result["num_examples"] == 81 and result["purity"] == 0.6


def test_thresholds_ignore_batch_padding():
    """Short headlines padded to a long one's length must not gain all-PAD windows.

    Filter 1 of width 1 scores every word negative (w6 least), so an unmasked PAD window
    (output 0, the bias) would beat every real pick of a short headline.
    """
    model = thresholds_model()
    with torch.no_grad():
        model.convs[0].weight[1, 1:, 0] = -1.0
        model.convs[0].weight[1, 6, 0] = -0.5
    rows = [[6, 2]] * 30 + [[2, 3]] * 30 + [[2, 3, 4, 7, 8, 9, 10, 11]]
    labels = torch.tensor([0] * 30 + [1] * 31)
    for chunk in (rows, rows[:60]):  # with and without the long headline in the batch
        result = compute_filter_thresholds(model, batch_of(chunk).ids, labels[:len(chunk)], min_support=5)
        assert result["widths"]["1"]["class"][1] == 0
        assert result["widths"]["1"]["threshold"][1] == pytest.approx(-0.5)
        assert result["widths"]["1"]["support"][1] == 30


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
    explanations = Explainer(model, LabelEncoder(list("abcd")), None, ig_steps=64).explain(batch, target)
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
    explanations = Explainer(model, LabelEncoder(list("abcd")), None, ig_steps=8).explain(batch, target)
    reference, deltas = LayerIntegratedGradients(model, model.embeddings).attribute(
        batch.ids, baselines=torch.zeros_like(batch.ids), target=target, n_steps=8,
        method=IG_METHOD, return_convergence_delta=True)
    for row, explanation in enumerate(explanations):
        length = len(batch.tokens[row])
        assert explanation["token_scores"] == pytest.approx(reference[row, :length].sum(1).tolist(), abs=1e-5)
        assert explanation["delta"] == pytest.approx(float(deltas[row]), abs=1e-5)


def test_explaining_alone_or_in_a_padded_batch_gives_the_same_answer():
    model = random_cnn(seed=1)
    explainer = Explainer(model, LabelEncoder(list("abcd")), None, ig_steps=8)
    short = [4, 17, 30]
    alone = explainer.explain(batch_of([short]), [2])[0]
    mixed = explainer.explain(batch_of([list(range(10, 30)), short]), [1, 2])[1]
    for key in ("tokens", "ngrams", "opposing_ngrams", "picks", "opposing_picks", "explained_class"):
        assert alone[key] == mixed[key]
    assert alone["token_scores"] == pytest.approx(mixed["token_scores"], abs=1e-5)
    assert alone["delta"] == pytest.approx(mixed["delta"], abs=1e-5)
    for size in ("1", "2", "3"):
        assert alone["activations"][size] == pytest.approx(mixed["activations"][size], abs=1e-4)


def test_explain_runs_inside_inference_mode_and_leaves_grad_mode_alone():
    model = random_cnn()
    explainer = Explainer(model, LabelEncoder(list("abcd")), None, ig_steps=4)
    with torch.inference_mode():
        batch = batch_of([[5, 6, 7]])  # ids made in inference mode, as a handler would
        explanation = explainer.explain(batch, [1])[0]
        assert not torch.is_grad_enabled()
    assert len(explanation["token_scores"]) == 3
    assert all(p.grad is None for p in model.parameters())


def test_headlines_without_a_known_word_are_not_explained_and_leave_the_others_alone():
    explainer = Explainer(random_cnn(), LabelEncoder(list("abcd")), None, ig_steps=4)
    ids = torch.tensor([[5, 9, 13], [0, 0, 0], [1, 1, 0]])  # readable, empty, all UNK
    batch = EncodedBatch(ids=ids, tokens=[["w5", "w9", "w13"], [], ["zz", "qq"]], unknown=[0, 0, 2])
    readable, empty, unknown = explainer.explain(batch, [2, 0, 0])
    abstained = {"explained_class": None, "abstained": NO_KNOWN_WORDS}
    assert empty == {"tokens": [], **abstained}
    assert unknown == {"tokens": ["zz", "qq"], **abstained}
    alone = explainer.explain(batch_of([[5, 9, 13]]), [2])[0]
    assert readable["ngrams"] == alone["ngrams"] and readable["explained_class"] == "c"
    assert readable["token_scores"] == pytest.approx(alone["token_scores"], abs=1e-6)


def test_only_filters_of_the_predicted_class_are_the_reason_the_others_argue_against():
    """Width-1 filter 0 fires on w5 for class 1 ("pos"), filter 1 on w6 for class 0 ("neg")."""
    thresholds = {"widths": {"1": {"class": [1, 0], "threshold": [0.5, 0.5]},
                             "2": {"class": [0, 0], "threshold": [None, None]},
                             "3": {"class": [0, 0], "threshold": [None, None]}}}
    for given in (thresholds, None):  # saved classes, or the head's at this headline: the same here
        explainer = Explainer(thresholds_model(), LABELS, given, ig_steps=4)
        as_pos, as_neg = explainer.explain(batch_of([[2, TARGET_WORD, 6, 3]] * 2), [1, 0])
        assert as_pos["ngrams"]["1"]["ngram"] == "w5" and as_pos["ngrams"]["1"]["counted_filters"] == 1
        assert as_pos["opposing_ngrams"]["1"]["ngram"] == "w6"
        assert as_pos["opposing_ngrams"]["1"]["favours"] == {"neg": 1}
        assert as_pos["picks"]["1"] == [0, 1, 0, 0] and as_pos["opposing_picks"]["1"] == [0, 0, 1, 0]
        assert as_neg["ngrams"]["1"]["ngram"] == "w6" and as_neg["opposing_ngrams"]["1"]["ngram"] == "w5"
        assert as_neg["opposing_ngrams"]["1"]["favours"] == {"pos": 1}


def test_without_thresholds_a_filter_counts_for_the_class_its_head_favours_at_this_headline():
    """Filter 0 (w5) reaches the logits only through hidden unit 0, which w6 switches off:
    in a headline with w6, w5 no longer favours "pos", so it is no longer presented as the
    reason for "pos"."""
    model = thresholds_model()
    with torch.no_grad():
        model.fc1.weight[0, 1] = -5.0  # unit 0 = f0 - 5 f1 + 1 dies when filter 1 (w6) fires
    explainer = Explainer(model, LABELS, None, ig_steps=4)
    with_unit, without_unit = explainer.explain(batch_of([[2, TARGET_WORD, 3], [2, TARGET_WORD, 6]]), [1, 1])
    assert with_unit["ngrams"]["1"]["ngram"] == "w5"
    assert without_unit["ngrams"]["1"]["ngram"] != "w5"
    assert "w5" in {without_unit["opposing_ngrams"]["1"]["ngram"]} | {
        r["ngram"] for r in without_unit["opposing_ngrams"]["1"]["runners_up"]}


def test_explanations_in_chunks_equal_one_pass(monkeypatch):
    """Big batches are explained in chunks of at most MAX_IG_CELLS interpolated positions;
    no number may depend on the chunking."""
    import model.explain as explain_module

    torch.manual_seed(3)
    model = CNN(ModelConfig(vocab_size=40, num_classes=4, embedding_dim=6, num_filters=4))
    ids = torch.randint(2, 40, (5, 7))
    ids[1, 4:] = 0
    batch = EncodedBatch(ids=ids, tokens=[[f"w{i}" for i in range(7)]] * 5, unknown=[0] * 5)
    explainer = Explainer(model, LabelEncoder(["a", "b", "c", "d"]), None, ig_steps=4)
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
    Explainer(model, LabelEncoder(["a", "b", "c", "d"]), None, ig_steps=4).explain(batch, [0] * 40)
    assert seen and max(seen) <= 256
    assert sum(seen) >= 40 * 30 * (4 + 1)  # every headline went through filters and IG
