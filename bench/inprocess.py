"""The in-process limit: the handler, with a real `ts.context.Context` as a worker calls it,
and the bare model, timed without HTTP or TorchServe.
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from ts.context import Context, RequestProcessor

from handler.handler import NewsHandler
from serving.properties import MODEL_NAME


def load_handler(model_dir: Path, model_yaml_config: dict | None = None) -> tuple[NewsHandler, Context]:
    """An initialized handler over `model_dir`, and the context to call it with (CPU, no metrics)."""
    context = Context(MODEL_NAME, str(model_dir), None, 1, None, "bench",
                      metrics=None, model_yaml_config=model_yaml_config or {})
    handler = NewsHandler()
    handler.initialize(context)
    return handler, context


def json_requests(context: Context, texts: Sequence[str], explain: bool = False) -> list[dict]:
    """A TorchServe batch of one-headline JSON requests (as the worker hands it over)."""
    headers = {"body": {"content-type": "application/json"}}
    if explain:
        headers["explain"] = "True"
    context.request_processor = [RequestProcessor(dict(headers)) for _ in texts]
    context.request_ids = {i: f"bench-{i}" for i in range(len(texts))}
    return [{"body": {"text": t}} for t in texts]


def time_per_item(fn: Callable[[], object], items: int, min_seconds: float = 1.0,
                  repeats: int = 5) -> dict:
    """Microseconds per item of `fn` (which handles `items` headlines per call): the median and
    best of `repeats` rounds of at least `min_seconds / repeats` each, so that one noisy
    neighbour does not decide the figure."""
    fn()  # warm-up: first-call allocations and lazy imports
    per_round = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds / repeats or calls == 0:
            fn()
            calls += 1
        per_round.append(elapsed / calls / items * 1e6)
    return {"us_per_headline_median": round(statistics.median(per_round), 1),
            "us_per_headline_best": round(min(per_round), 1), "headlines_per_call": items}


def measure(model_dir: Path, headlines: Sequence[str], batch: int = 32,
            min_seconds: float = 1.0, model_yaml_config: dict | None = None) -> dict:
    """Handler (parse + preprocess + inference + postprocess) and bare forward pass timings;
    `model_yaml_config`'s handler section sets the torch threads, as in a worker."""
    handler, context = load_handler(model_dir, model_yaml_config)
    one, many = list(headlines[:1]), (list(headlines[:batch]) * batch)[:batch]
    results = {"torch_threads": torch.get_num_threads()}

    def handle(texts: list[str], explain: bool = False) -> Callable[[], object]:
        def call() -> object:
            data = json_requests(context, texts, explain)
            out = handler.handle(data, context)
            # The handler may answer dicts, or JSON text it serialized itself.
            first = json.loads(out[0]) if isinstance(out[0], (str, bytes)) else out[0]
            if len(out) != len(texts) or not isinstance(first, dict) or "label" not in first:
                raise RuntimeError(f"handler did not answer the bench batch: {out[:1]}")
            return out
        return call

    results["handler_1"] = time_per_item(handle(one), 1, min_seconds)
    results[f"handler_{batch}"] = time_per_item(handle(many), batch, min_seconds)
    if handler.explainer is not None:
        results["explain_1"] = time_per_item(handle(one, explain=True), 1, min_seconds)
        results[f"explain_{batch}"] = time_per_item(handle(many, explain=True), batch, min_seconds)

    predictor = handler.predictor
    for name, texts in (("1", one), (str(batch), many)):
        ids = predictor.encode(texts).ids

        def forward(ids: torch.Tensor = ids) -> object:
            with torch.inference_mode():
                return predictor.model(ids)
        results[f"forward_{name}"] = time_per_item(forward, len(texts), min_seconds)
        results[f"encode_{name}"] = time_per_item(lambda t=texts: predictor.encode(t), len(texts),
                                                  min_seconds)
    return results
