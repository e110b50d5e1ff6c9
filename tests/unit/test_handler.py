"""Unit tests of the TorchServe handler with TorchServe's own Context and a fake batch."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

import handler.handler as handler_module
from handler.handler import NewsHandler
from handler.request_parsing import HandlerSettings, choose_device
from model.explain import Explainer
from model.predictor import Predictor
from serving.properties import METRICS_CONFIG, REPO_ROOT

GOOD = "The final tennis tournament starts next week."
MODEL_CONFIG = yaml.safe_load(
    (REPO_ROOT / "handler" / "model-config.yaml").read_text())


def make_context(model_dir, headers: list[dict], gpu=None, yaml_config=None) -> Context:
    """A TorchServe Context for one batch: per-request headers, a metrics cache."""
    metrics = MetricsCacheYamlImpl(config_file_path=str(METRICS_CONFIG))
    metrics.initialize_cache()
    metrics.model_name = "news_cnn"
    context = Context("news_cnn", str(model_dir), {"model": {}}, len(headers), gpu, "0.12.0",
                      metrics=metrics, model_yaml_config=yaml_config or MODEL_CONFIG)
    set_batch(context, headers)
    return context


def set_batch(context: Context, headers: list[dict]) -> None:
    context.request_processor = [RequestProcessor(h) for h in headers]
    context.request_ids = {i: f"req-{i}" for i in range(len(headers))}
    context.metrics.request_ids = context.request_ids


def text_request(body, content_type="text/plain", explain=False) -> tuple[dict, dict]:
    """(row, headers) as TorchServe's Service passes them for one request."""
    headers = {"body": {"content-type": content_type}}
    if explain:
        headers["explain"] = "True"
    return {"body": body}, headers


def json_request(obj, explain=False) -> tuple[dict, dict]:
    return text_request(obj, "application/json", explain)


@pytest.fixture(scope="module")
def predictor(tiny_artifacts) -> Predictor:
    return Predictor.from_dir(tiny_artifacts)


@pytest.fixture()
def served(tiny_artifacts):
    """An initialized handler and a function that runs one batch through `handle`."""
    handler = NewsHandler()
    context = make_context(tiny_artifacts, [{}])
    handler.initialize(context)

    def run(*requests):
        rows = [r for r, _ in requests]
        set_batch(context, [h for _, h in requests])
        # Answers leave the handler as JSON text; describe requests as TorchServe wants them.
        output = [json.loads(o) if isinstance(o, str) else o for o in handler.handle(rows, context)]
        statuses = [context.get_response_status(i)[0] for i in range(len(rows))]
        return output, statuses

    run.handler, run.context = handler, context
    return run


# -- device and settings ---------------------------------------------------------------------
def test_device_is_cpu_without_gpu_id(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device(None) == torch.device("cpu")


def test_device_is_the_assigned_gpu_when_cuda_works(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device(1) == torch.device("cuda:1")


def test_device_falls_back_to_cpu_when_cuda_is_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device(0) == torch.device("cpu")


def test_initialize_loads_onto_the_chosen_device(tiny_artifacts, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    seen = {}
    real = Predictor.from_dir

    def fake_from_dir(directory, device="cpu"):
        seen["directory"], seen["device"] = str(directory), device
        return real(directory, "cpu")  # no GPU here: load on the CPU once the choice is recorded

    monkeypatch.setattr(handler_module.Predictor, "from_dir", fake_from_dir)
    handler = NewsHandler()
    handler.initialize(make_context(tiny_artifacts, [{}], gpu=1))
    assert seen == {"directory": str(tiny_artifacts), "device": torch.device("cuda:1")}
    assert handler.map_location == "cuda:1"


def test_initialize_uses_cpu_and_the_configured_threads(tiny_artifacts, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    handler = NewsHandler()
    handler.initialize(make_context(tiny_artifacts, [{}], gpu=0,
                                    yaml_config={"handler": {"num_threads": 3}}))
    assert handler.device == torch.device("cpu")
    assert threads == [3]


def test_settings_default_from_the_shipped_model_config_and_env_override():
    shipped = MODEL_CONFIG["handler"]
    assert HandlerSettings.from_yaml_config(MODEL_CONFIG, environ={}) == HandlerSettings(
        shipped["max_chars"], shipped["max_texts"], shipped["num_threads"])
    assert HandlerSettings.from_yaml_config({}, environ={"NEWS_CNN_NUM_THREADS": "2"}).num_threads == 2
    with pytest.raises(ValueError):
        HandlerSettings.from_yaml_config({"handler": {"max_texts": 0}}, environ={})


# -- good inputs -----------------------------------------------------------------------------
def test_each_input_form_matches_the_in_process_predictor(served, predictor):
    expected = predictor.predict([GOOD, "oil prices", "rocket space"])
    output, statuses = served(
        text_request(GOOD),
        text_request(GOOD.encode("utf-8"), "application/octet-stream"),
        json_request({"text": GOOD}),
        json_request({"texts": ["oil prices", "rocket space"]}),
    )
    assert statuses == [200, 200, 200, 200]
    assert output[0] == output[1] == output[2] == expected[0]
    assert output[3] == expected[1:]
    probabilities = list(output[0]["probabilities"].values())
    assert probabilities == sorted(probabilities, reverse=True)
    assert output[0]["label"] == next(iter(output[0]["probabilities"]))


def test_a_headline_with_a_known_word_is_answered_whatever_else_it_holds(served):
    output, statuses = served(text_request("zzz qqq tennis"), text_request("the talks"))
    assert statuses == [200, 200]
    assert output[0]["num_tokens"] == 3 and output[0]["unknown_tokens"] == 2
    assert output[0]["label"] in output[0]["probabilities"] and output[0]["abstained"] is None
    # "talks" is in the frozen pretrained tail, not the learned vocabulary: still known.
    assert output[1]["num_tokens"] == 1 and output[1]["unknown_tokens"] == 0 and output[1]["label"]


NO_KNOWN_WORD = {"stopwords only": "the of a", "unknown words only": "zzz qqq",
                 "punctuation only": "!!! ??? ...", "empty after preprocessing": "(Reuters) -- !"}


def test_headlines_without_a_known_word_abstain_in_place_and_are_counted(served, predictor, monkeypatch):
    recorded = []
    record = served.handler._add_metric

    def recording(name, value, *args):
        recorded.append((name, value))
        record(name, value, *args)

    monkeypatch.setattr(served.handler, "_add_metric", recording)
    texts = ["oil prices", *NO_KNOWN_WORD.values(), "rocket space"]
    output, statuses = served(json_request({"texts": texts}), text_request("zzz"), text_request(GOOD))
    assert statuses == [200, 200, 200]
    answered = predictor.predict(["oil prices", "rocket space", GOOD])
    assert output[0][0] == answered[0] and output[0][-1] == answered[1] and output[2] == answered[2]
    assert answered[0]["abstained"] is None and answered[0]["label"]
    for name, answer in zip(NO_KNOWN_WORD, output[0][1:-1], strict=True):
        assert answer["label"] is None and answer["probabilities"] is None, name
        assert answer["abstained"] == "no_known_words", name
        assert answer["unknown_tokens"] == answer["num_tokens"], name
    assert output[1] == {"label": None, "probabilities": None, "num_tokens": 1, "unknown_tokens": 1,
                         "abstained": "no_known_words"}
    assert (handler_module.METRIC_ABSTENTIONS, 5) in recorded
    recorded.clear()
    served(text_request(GOOD))
    assert handler_module.METRIC_ABSTENTIONS not in {name for name, _ in recorded}


def test_an_abstaining_headline_is_explained_as_abstained(served):
    output, statuses = served(json_request({"texts": [GOOD, "the of zzz"]}, explain=True))
    assert statuses == [200]
    explained, abstained = output[0]
    assert explained["label"] and explained["explained_class"] == explained["label"]
    assert len(explained["token_scores"]) == 5
    assert abstained == {"label": None, "probabilities": None, "num_tokens": 1, "unknown_tokens": 1,
                         "abstained": "no_known_words", "tokens": ["zzz"], "explained_class": None}


def test_the_whole_batch_is_one_forward_pass(served):
    calls = []
    model = served.handler.predictor.model
    hook = model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    try:
        served(text_request(GOOD), json_request({"texts": ["oil prices", "a b c d e f g"]}),
               json_request({"text": "space"}))
    finally:
        hook.remove()
    assert len(calls) == 1 and calls[0][0] == 4


# -- bad inputs ------------------------------------------------------------------------------
BAD = [
    ("empty text", text_request(""), 400, "empty_body"),
    ("empty json body", json_request(bytearray(b"")), 400, "empty_body"),
    ("whitespace", text_request(" \t\n "), 400, "empty_text"),
    ("invalid utf-8 text", text_request(b"caf\xe9 \xff"), 400, "invalid_utf8"),
    ("invalid utf-8 json", json_request(b'{"text": "\xff"}'), 400, "invalid_utf8"),
    ("malformed json", json_request(b'{"text": "x"'), 400, "malformed_json"),
    ("json array", json_request(["x"]), 400, "invalid_json"),
    ("json string", json_request("just a string"), 400, "invalid_json"),
    ("json number", json_request(3), 400, "invalid_json"),
    ("no text key", json_request({"headline": "x"}), 400, "missing_text"),
    ("empty json object", json_request({}), 400, "missing_text"),
    ("both keys", json_request({"text": "x", "texts": ["y"]}), 400, "text_and_texts"),
    ("text not a string", json_request({"text": 5}), 400, "invalid_text"),
    ("empty text in json", json_request({"text": "   "}), 400, "empty_text"),
    ("texts not a list", json_request({"texts": "x"}), 400, "invalid_texts"),
    ("texts with a number", json_request({"texts": ["x", 1]}), 400, "invalid_texts"),
    ("texts empty", json_request({"texts": []}), 400, "empty_texts"),
    ("texts with an empty one", json_request({"texts": ["x", ""]}), 400, "empty_text"),
    ("headline too long", text_request("word " * 201), 413, "text_too_long"),
    ("too many texts", json_request({"texts": ["x"] * 65}), 413, "too_many_texts"),
    ("no body", ({}, {}), 400, "empty_body"),
    ("form fields", ({"some field": "x"}, {}), 400, "unsupported_body"),
]


@pytest.mark.parametrize("name, request_, status, error", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_its_own_4xx_json(served, name, request_, status, error):
    output, statuses = served(request_)
    assert statuses == [status]
    assert output[0]["error"] == error and output[0]["message"]
    # Only a refusal about one headline of `texts` names an index.
    assert set(output[0]) == {"error", "message"} | ({"index"} if "index" in output[0] else set())


BAD_IN_TEXTS = [
    ({"texts": ["fine", "also fine", "  "]}, 400, "empty_text", 2),
    ({"texts": ["fine", 7, "x"]}, 400, "invalid_texts", 1),
    ({"texts": [None]}, 400, "invalid_texts", 0),
    ({"texts": ["fine", "word " * 201]}, 413, "text_too_long", 1),
]


@pytest.mark.parametrize("body, status, error, index", BAD_IN_TEXTS)
def test_a_bad_headline_inside_texts_is_named_by_its_index(served, body, status, error, index):
    output, statuses = served(json_request(body))
    assert statuses == [status]
    assert output[0]["error"] == error and output[0]["index"] == index
    assert f"texts[{index}]" in output[0]["message"]


def test_a_request_without_a_body_says_to_post_one(served):
    """GET and DELETE reach the handler as an empty body (TorchServe does not pass the method)."""
    output, statuses = served(text_request(""))
    assert statuses == [400] and output[0]["error"] == "empty_body"
    assert "POST" in output[0]["message"] and "GET" in output[0]["message"]


def test_a_bad_request_does_not_spoil_its_batch(served, predictor):
    output, statuses = served(text_request(GOOD), json_request(b"{oops"),
                              json_request({"texts": ["oil prices", "space"]}), text_request(""))
    assert statuses == [200, 400, 200, 400]
    assert output[0] == predictor.predict([GOOD])[0]
    assert output[2] == predictor.predict(["oil prices", "space"])
    assert output[1]["error"] == "malformed_json" and output[3]["error"] == "empty_body"


def test_the_correlation_id_is_echoed_on_answers_and_refusals_whatever_its_case(served):
    good_row, good_headers = json_request({"text": GOOD})
    bad_row, bad_headers = json_request({"text": ""})
    plain_row, plain_headers = json_request({"text": GOOD})
    output, statuses = served((good_row, {**good_headers, "x-correlation-id": "run1-17"}),
                              (bad_row, {**bad_headers, "X-Correlation-Id": "run1-18"}),
                              (plain_row, plain_headers))
    assert statuses == [200, 400, 200]
    context = served.context
    assert context.get_response_headers(0)["X-Correlation-Id"] == "run1-17"
    assert context.get_response_headers(1)["X-Correlation-Id"] == "run1-18"
    assert "X-Correlation-Id" not in context.get_response_headers(2)
    assert context.get_response_content_type(0) == "application/json"


@pytest.mark.parametrize("value", ["", "has space", "x" * 129, "caf\u00e9"])
def test_an_invalid_correlation_id_is_refused_with_400_and_not_echoed(served, value):
    row, headers = json_request({"text": GOOD})
    good_row, good_headers = json_request({"text": GOOD})
    output, statuses = served((row, {**headers, "X-Correlation-Id": value}), (good_row, good_headers))
    assert statuses == [400, 200]
    assert output[0]["error"] == "invalid_correlation_id" and "128 visible ASCII" in output[0]["message"]
    assert "X-Correlation-Id" not in served.context.get_response_headers(0)


def test_a_model_failure_answers_500_for_every_request_without_raising(served, monkeypatch):
    def broken(ids):
        raise RuntimeError("boom")

    monkeypatch.setattr(served.handler.predictor, "probabilities", broken)
    row, headers = text_request(GOOD)
    output, statuses = served((row, {**headers, "X-Correlation-Id": "c-1"}), text_request(""))
    assert statuses == [500, 500]
    assert all(o["error"] == "internal_error" for o in output)
    assert served.context.get_response_headers(0)["X-Correlation-Id"] == "c-1"


# -- explanations: decided per request ------------------------------------------------------
class RecordingExplainer:
    """Stands in for model.explain.Explainer and records what it was asked."""

    def __init__(self):
        self.calls = []

    def explain(self, batch, predicted):
        self.calls.append((batch.tokens, list(predicted), tuple(batch.ids.shape)))
        return [{"tokens": t, "token_scores": [0.5] * len(t), "delta": 0.0, "ngrams": {}}
                for t in batch.tokens]


def test_only_explanation_requests_are_explained(served, predictor):
    explainer = RecordingExplainer()
    served.handler.explainer = explainer
    output, statuses = served(
        text_request(GOOD),  # plain prediction, first in the batch
        text_request("oil prices", explain=True),
        json_request({"texts": ["rocket space", "the of"]}, explain=True),
        json_request({"texts": []}, explain=True),  # bad: never reaches the explainer
        json_request({"text": "election vote"}),
    )
    assert statuses == [200, 200, 200, 400, 200]
    assert len(explainer.calls) == 1
    tokens, predicted, shape = explainer.calls[0]
    assert tokens == [["oil", "prices"], ["rocket", "space"], []]
    classes = predictor.labels.classes
    expected = predictor.predict(["oil prices", "rocket space", "the of"])
    assert [classes[p] for p in predicted[:2]] == [e["label"] for e in expected[:2]]
    assert expected[2]["label"] is None and output[2][1]["label"] is None  # "the of" abstains
    assert shape[0] == 3
    assert "token_scores" not in output[0] and "token_scores" not in output[4]
    assert output[1]["token_scores"] == [0.5, 0.5] and output[1]["label"] == expected[0]["label"]
    assert [o["tokens"] for o in output[2]] == [["rocket", "space"], []]
    assert output[2][0]["probabilities"] == expected[1]["probabilities"]


def test_explanations_need_only_the_header_on_that_request(served):
    explainer = RecordingExplainer()
    served.handler.explainer = explainer
    output, _ = served(text_request(GOOD, explain=True), text_request("oil prices"))
    assert explainer.calls[0][0] == [["final", "tennis", "tournament", "starts", "week"]]
    assert "token_scores" in output[0] and "token_scores" not in output[1]


def test_without_an_explainer_explanations_get_501_and_predictions_still_work(served):
    served.handler.explainer = None
    output, statuses = served(text_request(GOOD, explain=True), text_request(GOOD))
    assert statuses == [501, 200]
    assert output[0]["error"] == "explanations_unavailable" and output[1]["label"]


def test_a_failing_explainer_fails_only_the_explanation_requests(served):
    class Broken:
        def explain(self, batch, predicted):
            raise RuntimeError("no")

    served.handler.explainer = Broken()
    output, statuses = served(text_request(GOOD, explain=True), text_request(GOOD))
    assert statuses == [500, 200]
    assert output[0]["error"] == "explanation_failed"


def test_an_explainer_that_loses_an_explanation_fails_only_the_explanation_requests(served):
    class Short:
        def explain(self, batch, predicted):
            return RecordingExplainer().explain(batch, predicted)[:-1]

    served.handler.explainer = Short()
    output, statuses = served(json_request({"texts": [GOOD, "oil prices"]}, explain=True), text_request(GOOD))
    assert statuses == [500, 200]
    assert output[0]["error"] == "explanation_failed" and output[1]["label"]


def test_the_real_explainer_is_loaded_and_used(served):
    """model/explain.py always ships: the handler explains with it (no thresholds here)."""
    assert isinstance(served.handler.explainer, Explainer)
    assert served.handler.describe_handle()["explanations"] is True
    output, statuses = served(text_request(GOOD, explain=True))
    assert statuses == [200]
    assert output[0]["tokens"] == ["final", "tennis", "tournament", "starts", "week"]
    assert len(output[0]["token_scores"]) == 5 and "delta" in output[0] and "ngrams" in output[0]


def test_the_largest_accepted_request_is_answered_within_the_token_cap(served):
    """max_texts headlines of max_chars characters that accent folding turns into one word
    each: every headline is answered (and explained) on its first MAX_TOKENS words."""
    from model.predictor import MAX_TOKENS

    settings = served.handler.settings
    headline = "oil " + "¼" * (settings.max_chars - 4)  # one known word, then ~1,000 more
    largest = json_request({"texts": [headline] * settings.max_texts}, explain=True)
    (answers,), statuses = served(largest)
    assert statuses == [200] and len(answers) == settings.max_texts
    assert all(a["label"] is not None and len(a["token_scores"]) == MAX_TOKENS for a in answers)
    assert {len(a["tokens"]) for a in answers} == {MAX_TOKENS} == {a["num_tokens"] for a in answers}


# -- describe and metrics --------------------------------------------------------------------
def test_describe_reports_the_handler_metadata(served):
    output, statuses = served(({}, {"describe": "True"}))
    assert statuses == [200]
    assert output[0]["version"] == "0.1.0"
    assert output[0]["labels"] == ["Business", "Sci/Tech", "Sports", "World"]


@pytest.mark.parametrize("request_", [text_request(GOOD), json_request({"texts": [GOOD, "oil"]}),
                                      text_request(GOOD, explain=True)], ids=["text", "texts", "explain"])
def test_a_describe_header_never_turns_a_prediction_into_a_description(served, predictor, request_):
    """TorchServe passes every client header to the handler: `describe: true` on a request with
    a headline must still get the prediction (or explanation) of that headline."""
    row, headers = request_
    (plain,), _ = served((row, headers))
    output, statuses = served((row, {**headers, "describe": "True"}))
    assert statuses == [200] and output == [plain]
    answers = plain if isinstance(plain, list) else [plain]
    assert all("label" in a and "version" not in a for a in answers)


def test_metrics_are_recorded_and_declared_in_the_metrics_config(served):
    served(text_request("zzz tennis"), text_request(""), text_request("zzz"))
    declared = yaml.safe_load(open(METRICS_CONFIG))["model_metrics"]
    names = {m["name"]: kind for kind, entries in declared.items() for m in entries}
    cache = served.context.metrics.cache
    for name in (handler_module.METRIC_PREPROCESS_TIME, handler_module.METRIC_UNKNOWN_RATIO,
                 handler_module.METRIC_BATCH_REQUESTS, handler_module.METRIC_BATCH_HEADLINES,
                 handler_module.METRIC_BAD_REQUESTS, handler_module.METRIC_ABSTENTIONS,
                 "HandlerTime"):
        assert name in names, f"{name} is not declared in {METRICS_CONFIG}"
        recorded = {n for by_type in cache.values() for n in by_type}
        assert name in recorded


def test_answers_are_json_text_unless_an_envelope_wraps_them(tiny_artifacts, monkeypatch):
    """TorchServe sends a string as is (no slow indent=2 dump); under KServe's envelope the
    handler hands back objects for the envelope to nest in its {"predictions": [...]}."""
    for envelope, expected_type in (("", str), ("kserve", dict)):
        monkeypatch.setenv("TS_SERVICE_ENVELOPE", envelope)
        handler = NewsHandler()
        context = make_context(tiny_artifacts, [{}])
        handler.initialize(context)
        set_batch(context, [{}])
        (answer,) = handler.handle([{"body": {"text": GOOD}}], context)
        assert isinstance(answer, expected_type)
