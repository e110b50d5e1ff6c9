"""The BentoML peer of `make bench-peers`: the same model/ code behind BentoML 1.4's adaptive batching.

    PEER_ARTIFACTS=artifacts PEER_PROCESSES=2 bentoml serve bench.peers.bento:NewsPeer --port 8000

A batchable API takes a list per request, so one-headline requests reach `NewsModel` (its
PEER_PROCESSES workers batch up to PEER_MAX_BATCH within PEER_MAX_LATENCY_MS, a budget for wait
plus compute) through the front Service `NewsPeer`: BentoML's documented way. Settings come
from the environment because BentoML reads them at import, in every process.
"""
from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import aiohttp
import bentoml

from bench.peers.apps import DEFAULT_MAX_BATCH, PeerModel

# The latency budget given to BentoML's dispatcher: far above any batch's time here, so it
# batches freely and never refuses under the bench's load.
DEFAULT_MAX_LATENCY_MS = 1000
PROCESSES = int(os.environ.get("PEER_PROCESSES", os.cpu_count() or 2))
MAX_BATCH = int(os.environ.get("PEER_MAX_BATCH", DEFAULT_MAX_BATCH))
MAX_LATENCY_MS = int(os.environ.get("PEER_MAX_LATENCY_MS", DEFAULT_MAX_LATENCY_MS))
# No access log per request, as the FastAPI peers (uvicorn --no-access-log).
QUIET = {"access": {"enabled": False}}


@bentoml.service(workers=PROCESSES, resources={"cpu": "1"}, traffic={"timeout": 60}, logging=QUIET)
class NewsModel:
    """The model: batched predictions and explanations, one PeerModel per worker process."""

    def __init__(self) -> None:
        self.model = PeerModel(os.environ["PEER_ARTIFACTS"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, texts: list[str]) -> list[dict]:
        return self.model.predict(texts)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def explain(self, texts: list[str]) -> list[dict]:
        return self.model.explain(texts)


async def _once_more_if_dropped(call: Callable[[], Awaitable[list[dict]]]) -> list[dict]:
    """`call()`, sent again once when the model Service dropped the connection: BentoML's
    client between Services meets closed kept-alive connections (BentoML issue 4971, the fix
    not released in 1.4.40), about 5 % of calls under this bench's load."""
    try:
        return await call()
    except aiohttp.ClientConnectionError:
        return await call()


@bentoml.service(workers=1, traffic={"timeout": 60}, logging=QUIET)
class NewsPeer:
    """The HTTP front: one headline per request, as TorchServe's handler takes it."""

    model = bentoml.depends(NewsModel)

    @bentoml.api(route="/predictions")
    async def predictions(self, text: str) -> dict:
        return (await _once_more_if_dropped(lambda: self.model.to_async.predict([text])))[0]

    @bentoml.api(route="/explanations")
    async def explanations(self, text: str) -> dict:
        return (await _once_more_if_dropped(lambda: self.model.to_async.explain([text])))[0]
