"""The FastAPI peers of `make bench-peers`, and `PeerModel`, the model/ code every peer serves.

`create_app(batched=False)` is what most people write (a synchronous endpoint, one forward pass
per request); `batched=True` what a careful person writes (async endpoints before a MicroBatcher).

    PEER_ARTIFACTS=artifacts PEER_BATCHED=1 uvicorn bench.peers.apps:app_from_env --factory --workers 2
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bench.peers.microbatch import MicroBatcher
from model.explain import Explainer
from model.predictor import Predictor
from serving import cli

DEFAULT_MAX_BATCH = 32
# 0: a batch is whatever is queued when the previous one ends (no waiting at low load).
DEFAULT_MAX_DELAY_MS = 0.0


def peer_options() -> argparse.ArgumentParser:
    """The options every peer script (lit_serve, ray_serve) takes, as a parent parser."""
    options = cli.shared_options()
    options.add_argument("--artifacts", type=Path, required=True, help="the training run to serve")
    options.add_argument("--port", type=int, required=True, help="the loopback port to listen on")
    options.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="headlines per batch")
    options.add_argument("--max-delay-ms", type=float, default=DEFAULT_MAX_DELAY_MS,
                         help="the longest wait for a batch to fill")
    return options


class PeerModel:
    """Predictions and explanations for lists of headlines, as the TorchServe handler gives them."""

    def __init__(self, artifacts: str | Path, num_threads: int = 1) -> None:
        # One thread per process, like each TorchServe worker (handler num_threads: 1).
        torch.set_num_threads(num_threads)
        self.predictor = Predictor.from_dir(artifacts)
        self.explainer = Explainer(self.predictor.model, self.predictor.labels)

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """One answer per headline, in one forward pass."""
        return self.predictor.predict(list(texts))

    def explain(self, texts: Sequence[str]) -> list[dict]:
        """The answers with their explanations merged in, as the handler's /explanations (an
        abstained headline gets the same abstention entry as from TorchServe)."""
        encoded = self.predictor.encode(list(texts))
        probabilities = self.predictor.probabilities(encoded.ids)
        answers = self.predictor.format(probabilities, encoded)
        explanations = self.explainer.explain(encoded, probabilities.argmax(dim=1).tolist())
        return [{**answer, **explanation} for answer, explanation in zip(answers, explanations, strict=True)]


class Headline(BaseModel):
    """The request body both peers accept (TorchServe's handler also takes `{"text": ...}`)."""

    text: str


def create_app(artifacts: str | Path, batched: bool, max_batch: int = DEFAULT_MAX_BATCH,
               max_delay_ms: float = DEFAULT_MAX_DELAY_MS) -> FastAPI:
    """A FastAPI app serving `artifacts`: per-request inference, or micro-batched."""
    model = PeerModel(artifacts)
    app = FastAPI(title="news_cnn peer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ping")
    def ping() -> dict:
        return {"status": "Healthy"}

    if not batched:
        @app.post("/predictions")
        def predictions(headline: Headline) -> dict:
            return model.predict([headline.text])[0]

        @app.post("/explanations")
        def explanations(headline: Headline) -> dict:
            return model.explain([headline.text])[0]
        return app

    predict = MicroBatcher(model.predict, max_batch, max_delay_ms)
    explain = MicroBatcher(model.explain, max_batch, max_delay_ms)
    app.state.batchers = {"predictions": predict, "explanations": explain}

    # The answers are plain JSON types: JSONResponse skips FastAPI's encoder pass over them.
    @app.post("/predictions")
    async def batched_predictions(headline: Headline) -> JSONResponse:
        return JSONResponse(await predict.submit(headline.text))

    @app.post("/explanations")
    async def batched_explanations(headline: Headline) -> JSONResponse:
        return JSONResponse(await explain.submit(headline.text))
    return app


def app_from_env() -> FastAPI:
    """uvicorn's `--factory` entry: settings from PEER_ARTIFACTS, PEER_BATCHED, PEER_MAX_BATCH,
    PEER_MAX_DELAY_MS (each worker process builds its own app)."""
    return create_app(os.environ["PEER_ARTIFACTS"], os.environ.get("PEER_BATCHED") == "1",
                      int(os.environ.get("PEER_MAX_BATCH", DEFAULT_MAX_BATCH)),
                      float(os.environ.get("PEER_MAX_DELAY_MS", DEFAULT_MAX_DELAY_MS)))
