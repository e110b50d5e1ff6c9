"""The FastAPI peers of `make bench-peers` against tiny artifacts (no server process): they
must answer exactly what the TorchServe handler answers, through the same model/ code."""
from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("fastapi", reason="fastapi is a bench-only dependency: "
                    "make bench-peers installs bench/requirements-peers.txt")
httpx = pytest.importorskip("httpx", reason="the ASGI test client is httpx (bench/requirements-peers.txt)")

from bench import inprocess  # noqa: E402
from bench.harness import disagreement  # noqa: E402
from bench.peers.apps import PeerModel, create_app  # noqa: E402

TEXTS = ["The final tennis tournament starts next week.", "Oil prices and the stocks market",
         "space rocket software", "election vote talks in the war",
         "Zqxv blorpt wuggle"]  # no known word: the predictor abstains
ABSTAINING = len(TEXTS) - 1


def post_all(app, path: str, bodies: list) -> list:
    """POST each body to `app` concurrently, in-process (httpx over ASGI, no server)."""
    async def main() -> list:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://peer") as client:
            return await asyncio.gather(*(client.post(path, json=body) for body in bodies))
    return asyncio.run(main())


@pytest.fixture(scope="module")
def handler_answers(tiny_artifacts):
    """What the TorchServe handler answers, called in-process as a worker calls it."""
    handler, context = inprocess.load_handler(tiny_artifacts)

    def answers(explain: bool) -> list[dict]:
        out = handler.handle(inprocess.json_requests(context, TEXTS, explain), context)
        return [json.loads(a) if isinstance(a, (str, bytes)) else a for a in out]
    return {"predictions": answers(False), "explanations": answers(True)}


@pytest.mark.parametrize("batched", [False, True], ids=["fastapi", "fastapi-batched"])
@pytest.mark.parametrize("path", ["predictions", "explanations"])
def test_peer_answers_equal_the_handlers(tiny_artifacts, handler_answers, batched, path):
    app = create_app(tiny_artifacts, batched=batched)
    responses = post_all(app, f"/{path}", [{"text": t} for t in TEXTS])
    for r, expected in zip(responses, handler_answers[path], strict=True):
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        answer = r.json()
        assert disagreement(expected, answer, explanations=path == "explanations") is None
        assert set(answer) == set(expected)  # the same answer object, no key more or less


@pytest.mark.parametrize("batched", [False, True], ids=["fastapi", "fastapi-batched"])
@pytest.mark.parametrize("path", ["predictions", "explanations"])
def test_an_abstained_headline_gets_the_handlers_answer_object(tiny_artifacts, handler_answers,
                                                               batched, path):
    """`disagreement` skips abstained explanations: here the whole object must be equal."""
    expected = handler_answers[path][ABSTAINING]
    assert expected["label"] is None and expected["abstained"]
    if path == "explanations":
        assert expected["explained_class"] is None and expected["tokens"]
    app = create_app(tiny_artifacts, batched=batched)
    # Sent with its neighbours: the batched peer explains it inside a batch of readable ones.
    responses = post_all(app, f"/{path}", [{"text": t} for t in TEXTS])
    assert responses[ABSTAINING].json() == expected


def test_batched_peer_answers_each_request_its_own_headline(tiny_artifacts):
    """Many concurrent requests through the micro-batcher: each gets its own answer."""
    app = create_app(tiny_artifacts, batched=True)
    expected = PeerModel(tiny_artifacts).predict(TEXTS * 5)
    answers = [r.json() for r in post_all(app, "/predictions", [{"text": t} for t in TEXTS * 5])]
    assert all(disagreement(e, a) is None for e, a in zip(expected, answers, strict=True))
    assert max(app.state.batchers["predictions"].batch_sizes) > 1  # they really were batched


@pytest.mark.parametrize("body", [{"txt": "no text key"}, {"text": 3.5}, ["a list"]])
def test_a_body_without_a_text_string_gets_a_json_422(tiny_artifacts, body):
    (r,) = post_all(create_app(tiny_artifacts, batched=True), "/predictions", [body])
    assert r.status_code == 422 and "detail" in r.json()


def _litserve_answers(artifacts, explanations: bool, bodies: list) -> list:
    """What the LitServe peer's LitAPI answers, through LitServe's per-request steps in its order
    (decode each request, batch, predict, unbatch, encode each), without its server processes."""
    lit_serve = pytest.importorskip("bench.peers.lit_serve", reason="litserve: bench/requirements-peers.txt")
    api = lit_serve.NewsLitAPI(str(artifacts), explanations, max_batch=32, max_delay_ms=1.0)
    api.setup("cpu")
    batch = api.batch([api.decode_request(body) for body in bodies])
    return [api.encode_response(answer) for answer in api.unbatch(api.predict(batch))]


@pytest.mark.parametrize("path", ["predictions", "explanations"])
def test_litserve_peer_answers_equal_the_handlers(tiny_artifacts, handler_answers, path):
    answers = _litserve_answers(tiny_artifacts, path == "explanations", [{"text": t} for t in TEXTS])
    for answer, expected in zip(answers, handler_answers[path], strict=True):
        assert disagreement(expected, answer, explanations=path == "explanations") is None
        assert set(answer) == set(expected)
    assert answers[ABSTAINING] == handler_answers[path][ABSTAINING]


@pytest.mark.parametrize("body", [{"txt": "no text key"}, {"text": 3.5}, ["a list"]])
def test_litserve_peer_refuses_a_body_without_a_text_string_with_422(body):
    lit_serve = pytest.importorskip("bench.peers.lit_serve", reason="litserve: bench/requirements-peers.txt")
    with pytest.raises(lit_serve.HTTPException) as refused:
        lit_serve.headline_of(body)
    assert refused.value.status_code == 422


@pytest.mark.parametrize("path", ["predictions", "explanations"])
def test_bentoml_peer_model_answers_equal_the_handlers(tiny_artifacts, handler_answers, path, monkeypatch):
    """The batchable model Service's methods, called as one batch (its dispatcher's call)."""
    bento = pytest.importorskip("bench.peers.bento", reason="bentoml: bench/requirements-peers.txt")
    monkeypatch.setenv("PEER_ARTIFACTS", str(tiny_artifacts))
    model = bento.NewsModel.inner()
    answers = model.explain(TEXTS) if path == "explanations" else model.predict(TEXTS)
    for answer, expected in zip(answers, handler_answers[path], strict=True):
        assert disagreement(expected, answer, explanations=path == "explanations") is None
        assert set(answer) == set(expected)


def test_bentoml_front_sends_a_dropped_call_once_more_and_no_more():
    bento = pytest.importorskip("bench.peers.bento", reason="bentoml: bench/requirements-peers.txt")
    import aiohttp
    calls = []

    def dropping(times: int):
        async def call() -> list[dict]:
            calls.append(1)
            if len(calls) <= times:
                raise aiohttp.ServerDisconnectedError()
            return [{"label": "Sports"}]
        return call
    assert asyncio.run(bento._once_more_if_dropped(dropping(1))) == [{"label": "Sports"}]
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(bento._once_more_if_dropped(dropping(2)))
    assert len(calls) == 2
