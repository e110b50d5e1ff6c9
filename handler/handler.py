"""TorchServe handler for the news headline CNN: predictions and explanations over REST.

TorchServe hands `handle` a batch of requests (gathered by batchSize / maxBatchDelay). Each
request is judged on its own: a bad one gets its own 4xx JSON answer through
`context.set_response_status(code, phrase, idx)` while the others are answered normally, and
nothing is ever raised out of `handle` (TorchServe would fail the whole batch with a 503).
All good headlines of the batch go through ONE forward pass; requests sent to
`/explanations` (TorchServe sets their "explain" header) additionally get the explanation,
decided per request, not by the batch's first request as `BaseHandler` does.

Accepted bodies (UTF-8):
  * raw text (`Content-Type: text/plain`): one headline;
  * JSON `{"text": "..."}`: one headline -> one answer object;
  * JSON `{"texts": ["...", ...]}`: 1..max_texts headlines -> a list of answers in order.
Limits (settings in model-config.yaml's `handler` section): a headline is at most
`max_chars` characters (413 above), a request at most `max_texts` headlines (413 above).
A headline with no known word after preprocessing is not an error: it is answered in its
place with `"label": null` and `"abstained": "no_known_words"` (model/predictor.py), and
counted in NewsAbstentions.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
import time
from typing import Any

import torch
from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler

from model import artifacts
from model.monitoring import BUCKET_NAMES, INF, Tally
from model.predictor import EncodedBatch, Predictor

if __package__:  # in the checkout `handler` is a package: its request_parsing is the one module
    sys.modules.setdefault("request_parsing", importlib.import_module("handler.request_parsing"))
# In the archive this file *is* the module `handler`, beside request_parsing.py.
from request_parsing import (  # noqa: E402
    CORRELATION_HEADER,
    PHRASES,
    HandlerSettings,
    ParsedRequest,
    PreparedBatch,
    RequestError,
    check_correlation_id,
    choose_device,
    is_empty,
    parse_body,
    request_body,
)

logger = logging.getLogger(__name__)

# Custom metrics; each must be declared in the server's metrics.yaml (serving/metrics.yaml)
# or TorchServe's Prometheus endpoint drops it.
METRIC_PREPROCESS_TIME = "NewsPreprocessTime"  # ms, parsing + cleaning + padding per batch
METRIC_UNKNOWN_RATIO = "NewsUnknownTokenPercent"  # % of the batch's words mapped to UNK
METRIC_BATCH_REQUESTS = "NewsBatchRequests"  # requests in a TorchServe batch
METRIC_BATCH_HEADLINES = "NewsBatchHeadlines"  # headlines in the one forward pass
METRIC_BAD_REQUESTS = "NewsBadRequests"  # counter of requests answered with a 4xx
METRIC_ABSTENTIONS = "NewsAbstentions"  # counter of headlines answered "label": null (no known word)
# The model's behaviour, counted over answered headlines (docs/monitoring.md):
METRIC_PREDICTIONS = "NewsPredictions"  # counter by Label and Endpoint (predictions/explanations)
# TorchServe 0.12 builds a backend histogram with the Prometheus client's default buckets
# (0.25, 0.5, 0.75, 1 around the range that matters), which serving/metrics.yaml cannot change,
# and logs one line per observation: the confidence histogram is laid out by hand instead, as
# cumulative counters with an `le` dimension, which histogram_quantile reads like a histogram.
METRIC_CONFIDENCE_BUCKET = "NewsConfidence_bucket"  # headlines with confidence <= le
METRIC_CONFIDENCE_SUM = "NewsConfidence_sum"  # sum of the confidences (mean = sum / count)
METRIC_WORDS = "NewsWords"  # counter of words after preprocessing
METRIC_UNKNOWN_WORDS = "NewsUnknownWords"  # counter of those mapped to UNK
METRIC_WORKER_STARTS = "NewsWorkerStarts"  # counter of handler initialisations (worker (re)starts)
METRIC_HEARTBEAT = "NewsWorkerHeartbeat"  # gauge: Unix time of the worker's last report, by WorkerPid
ENDPOINTS = ("predictions", "explanations")
# The behaviour counters are summed in the worker and sent every METRICS_FLUSH_S seconds, not
# per batch: each metric is one log line the frontend parses, and a line per label and bucket
# per batch cost /predictions 16-20 % at c=64 (docs/monitoring.md). Counts reach /metrics within
# this delay; a worker that dies loses at most its last interval's.
METRICS_FLUSH_S = 1.0


class NewsHandler(BaseHandler):
    """BaseHandler lifecycle around the shared in-process Predictor (one copy of the text code)."""

    def __init__(self) -> None:
        super().__init__()
        self.predictor: Predictor | None = None
        self.explainer = None
        self.settings = HandlerSettings()
        self.version: str | None = None
        self._pending = self._empty_counts()
        self._pending_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def initialize(self, context) -> None:
        """Load every artifact from the archive's directory onto the chosen device."""
        self.context = context
        properties = context.system_properties
        model_dir = properties.get("model_dir")
        self.settings = HandlerSettings.from_yaml_config(getattr(context, "model_yaml_config", None))
        torch.set_num_threads(self.settings.num_threads)
        self.device = choose_device(properties.get("gpu_id"))
        self.map_location = str(self.device)
        self.predictor = Predictor.from_dir(model_dir, self.device)
        self.version = self._archive_version(context, model_dir)
        self.explainer = self._load_explainer(model_dir)
        self.model = self.predictor.model
        self.initialized = True
        self._start_counters()
        logger.info("news_cnn handler ready: device=%s threads=%d version=%s explanations=%s",
                    self.device, self.settings.num_threads, self.version, self.explainer is not None)

    @staticmethod
    def _archive_version(context, model_dir: str) -> str | None:
        """The version the archive was built with (`make archive VERSION=...` may override the
        training run's), falling back to the artifacts' manifest."""
        manifest = getattr(context, "manifest", None) or {}
        version = manifest.get("model", {}).get("modelVersion")
        if version:
            return str(version)
        if os.path.isfile(os.path.join(model_dir, artifacts.MANIFEST)):
            return artifacts.read_json(model_dir, artifacts.MANIFEST).get("version")
        return None

    def _load_explainer(self, model_dir: str):
        """The Explainer over the same model."""
        try:
            from model.explain import Explainer
        except ImportError:
            logger.warning("model.explain is missing: /explanations will answer 501")
            return None
        return Explainer(self.predictor.model, self.predictor.labels)

    def handle(self, data: list, context) -> list:
        """One answer per request; never raises (an exception here would 503 the whole batch)."""
        self.context = context
        start = time.perf_counter()
        try:
            prepared = self.preprocess(data)
            self.inference(prepared)
            output = self.postprocess(prepared)
        except Exception:  # noqa: BLE001 - the last line of defence, per the module docstring
            logger.exception("news_cnn handler failed on a batch of %d requests", len(data or []))
            failure = RequestError(500, "internal_error", "the model failed on this batch; "
                                   "the server logs say why")
            output = []
            for idx in range(len(data or [])):
                self._echo_correlation_id(idx)
                output.append(self._refuse(idx, failure))
        self._add_metric("HandlerTime", round((time.perf_counter() - start) * 1000, 3), "ms")
        return output

    def preprocess(self, data: list) -> PreparedBatch:
        """Parse and validate each request on its own, then encode all good headlines at once."""
        start = time.perf_counter()
        requests = [self._parse(idx, row) for idx, row in enumerate(data or [])]
        texts: list[str] = []
        for request in requests:
            request.first_row = len(texts)
            if request.error is None and not request.describe:
                texts.extend(request.texts)
        encoded = self.predictor.encode(texts) if texts else None
        self._add_metric(METRIC_PREPROCESS_TIME, round((time.perf_counter() - start) * 1000, 3), "ms")
        self._add_metric(METRIC_BATCH_REQUESTS, len(requests), "count")
        self._add_metric(METRIC_BATCH_HEADLINES, len(texts), "count")
        if encoded is not None:
            words = sum(len(t) for t in encoded.tokens)
            self._add_metric(METRIC_UNKNOWN_RATIO,
                             round(100.0 * sum(encoded.unknown) / words, 3) if words else 0.0, "percent")
            abstained = sum(reason is not None for reason in encoded.abstentions())
            if abstained:
                self._add_metric(METRIC_ABSTENTIONS, abstained, "count", MetricTypes.COUNTER)
        bad = sum(r.error is not None for r in requests)
        if bad:
            self._add_metric(METRIC_BAD_REQUESTS, bad, "count", MetricTypes.COUNTER)
        return PreparedBatch(requests=requests, encoded=encoded)

    def inference(self, prepared: PreparedBatch, *args, **kwargs) -> PreparedBatch:
        """ONE forward pass for every good headline of the batch, on the device."""
        if prepared.encoded is not None:
            with torch.inference_mode():
                prepared.probabilities = self.predictor.probabilities(prepared.encoded.ids)
        return prepared

    def postprocess(self, prepared: PreparedBatch) -> list:
        """Per request: the answer (object or list), or its error body with its status, as
        JSON text: given a dict, TorchServe would run json.dumps(indent=2) in pure Python
        (13 % of a worker's time on /explanations) and send 1.6x the bytes. Under a request
        envelope (KServe) the objects are returned for the envelope to nest."""
        answers = self.predictor.format(prepared.probabilities, prepared.encoded) \
            if prepared.encoded is not None else []
        self._explain_where_asked(prepared, answers)
        self._count_answers(prepared, answers)
        output = []
        for idx, request in enumerate(prepared.requests):
            self._echo_correlation_id(idx)
            if request.error is not None:
                output.append(self._refuse(idx, request.error))
            elif request.describe:
                output.append(self.describe_handle())
            else:
                mine = answers[request.first_row:request.first_row + len(request.texts)]
                self._set_json(idx)
                output.append(self._serialize(mine if request.as_list else mine[0]))
        return output

    def describe_handle(self) -> dict:
        """What `GET /models/news_cnn?customized=true` shows under customizedMetadata."""
        return {"version": self.version, "labels": self.predictor.labels.classes,
                "device": str(self.device), "num_threads": self.settings.num_threads,
                "max_chars": self.settings.max_chars, "max_texts": self.settings.max_texts,
                "explanations": self.explainer is not None}

    # -- metrics of the model's behaviour -----------------------------------------------
    @staticmethod
    def _empty_counts() -> dict[str, Tally]:
        return {name: Tally() for name in ENDPOINTS}

    def _start_counters(self) -> None:
        """Count one worker start, create every behaviour counter at 0 (a series that first
        appears at its Nth count loses those N to rate() and increase()), and start sending
        the counts every METRICS_FLUSH_S seconds."""
        if getattr(self.context, "metrics", None) is None:
            return  # no metrics sink (the in-process `--archive` mode): nothing to count
        self._add_metric(METRIC_WORKER_STARTS, 1, "count", MetricTypes.COUNTER)
        self._count(self._empty_counts(), zeros=True)
        threading.Thread(target=self._flush_forever, name="news-metrics", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            self._add_metric(METRIC_HEARTBEAT, round(time.time(), 3), "s", MetricTypes.GAUGE,
                             {"WorkerPid": str(os.getpid())})
            time.sleep(METRICS_FLUSH_S)
            self.flush_counts()

    def flush_counts(self) -> None:
        """Send the counts summed since the last flush (nothing when there are none)."""
        with self._pending_lock:
            by_endpoint, self._pending = self._pending, self._empty_counts()
        if any(tally.labelled or tally.abstentions for tally in by_endpoint.values()):
            try:
                self._count(by_endpoint)
            except Exception:  # noqa: BLE001 - the flushing thread must live on
                logger.warning("could not send the counts", exc_info=True)

    def _count_answers(self, prepared: PreparedBatch, answers: list[dict]) -> None:
        """Add the headlines this batch answers (not the refused requests) to the pending
        counts: per label and endpoint, confidence buckets, words. Never raises: a metrics
        failure fails no request."""
        if getattr(self.context, "metrics", None) is None:
            return
        try:
            answered = {name: [] for name in ENDPOINTS}
            for request in prepared.requests:
                if request.error is None and not request.describe:
                    answered[ENDPOINTS[1] if request.explain else ENDPOINTS[0]].extend(
                        answers[request.first_row:request.first_row + len(request.texts)])
            with self._pending_lock:
                for name, rows in answered.items():
                    if rows:
                        self._pending[name].add(rows)
        except Exception:  # noqa: BLE001
            logger.warning("could not count the answers", exc_info=True)

    def _count(self, by_endpoint: dict[str, Tally], zeros: bool = False) -> None:
        """Send counts to the counters (the nonzero ones; with `zeros`, every series at 0)."""
        overall = Tally.merged(by_endpoint.values())
        labels = self.predictor.labels.classes
        for endpoint, tally in by_endpoint.items():
            for label in labels:
                if zeros or tally.labels.get(label):
                    self._add_metric(METRIC_PREDICTIONS, tally.labels.get(label, 0), "count",
                                     MetricTypes.COUNTER, {"Label": label, "Endpoint": endpoint})
        buckets = overall.buckets
        for name in BUCKET_NAMES:
            if zeros or buckets[name]:
                self._add_metric(METRIC_CONFIDENCE_BUCKET, buckets[name], "count",
                                 MetricTypes.COUNTER, {"le": name})
        if zeros or buckets[INF]:
            self._add_metric(METRIC_CONFIDENCE_SUM, round(overall.confidence_sum, 6), "count",
                             MetricTypes.COUNTER)
        for name, value in ((METRIC_WORDS, overall.words), (METRIC_UNKNOWN_WORDS, overall.unknown_words)):
            if zeros or value:
                self._add_metric(name, value, "count", MetricTypes.COUNTER)
        if zeros:  # counted where the batch is encoded (preprocess)
            self._add_metric(METRIC_ABSTENTIONS, 0, "count", MetricTypes.COUNTER)

    # -- helpers ---------------------------------------------------------------------------
    def _parse(self, idx: int, row: Any) -> ParsedRequest:
        """Parse one request; its failure stays its own.

        The "describe" header is honoured only on a request without a body: TorchServe sets
        it on the management API's describe call, which has none, but it also passes every
        client header through, so a headline sent with `describe: true` is still predicted.
        """
        request = ParsedRequest(explain=self._header_true(idx, "explain"))
        try:
            check_correlation_id(self._header_any_case(idx, CORRELATION_HEADER))
            body = request_body(row)
            if is_empty(body) and self._header_true(idx, "describe"):
                request.describe = True
                return request
            request.texts, request.as_list = parse_body(body, self._content_type(idx), self.settings)
        except RequestError as err:
            request.error = err
        except Exception:  # noqa: BLE001 - an unforeseen body must not fail its neighbours
            logger.exception("could not parse request %d", idx)
            request.error = RequestError(400, "unreadable_body", "the body could not be read")
        return request

    def _explain_where_asked(self, prepared: PreparedBatch, answers: list[dict]) -> None:
        """Merge explanations into the answers of explanation requests only."""
        asking = [r for r in prepared.requests if r.explain and r.error is None and not r.describe]
        if not asking:
            return
        if self.explainer is None:
            for request in asking:
                request.error = RequestError(501, "explanations_unavailable",
                                             "this archive was built without model/explain.py")
            return
        rows = [row for r in asking for row in range(r.first_row, r.first_row + len(r.texts))]
        encoded = prepared.encoded
        width = max([self.predictor.model.config.max_filter_size]
                    + [len(encoded.tokens[row]) for row in rows])
        subset = EncodedBatch(ids=encoded.ids[rows, :width],
                              tokens=[encoded.tokens[row] for row in rows],
                              unknown=[encoded.unknown[row] for row in rows])
        predicted = prepared.probabilities[rows].argmax(dim=1).tolist()
        try:
            explanations = self.explainer.explain(subset, predicted)
            # One explanation per row, or none is used (zip's strict raises inside the try).
            explained = [{**answers[row], **explanation}
                         for row, explanation in zip(rows, explanations, strict=True)]
        except Exception:  # noqa: BLE001 - predictions of the same batch must still go out
            logger.exception("explanation failed for %d headlines", len(rows))
            for request in asking:
                request.error = RequestError(500, "explanation_failed", "the explanation failed; "
                                             "the server logs say why")
            return
        for row, answer in zip(rows, explained, strict=True):
            answers[row] = answer

    def _serialize(self, answer: dict | list) -> str | dict | list:
        """JSON text for TorchServe to send as is; the objects themselves under a request
        envelope (KServe's), which nests them in its own JSON answer."""
        return answer if self.settings.envelope else json.dumps(answer)

    def _refuse(self, idx: int, error: RequestError) -> str | dict:
        """Answer request `idx` with the error's HTTP status and its JSON body."""
        self.context.set_response_status(error.status, PHRASES.get(error.status, "Error"), idx)
        self._set_json(idx)
        return self._serialize(error.body())

    def _echo_correlation_id(self, idx: int) -> None:
        """Send request `idx`'s valid correlation id back (an invalid one is refused by _parse)."""
        try:
            value = check_correlation_id(self._header_any_case(idx, CORRELATION_HEADER))
        except RequestError:
            return
        if value is not None:
            self._set_header(idx, CORRELATION_HEADER, value)

    def _set_json(self, idx: int) -> None:
        self._set_header(idx, "content-type", "application/json")  # the key TorchServe reads

    def _set_header(self, idx: int, name: str, value: str) -> None:
        try:
            self.context.set_response_header(idx, name, value)
        except (AttributeError, IndexError, TypeError):
            pass  # contexts without per-request headers (e.g. direct calls) need none

    def _header(self, idx: int, name: str) -> Any:
        try:
            return self.context.get_request_header(idx, name)
        except (AttributeError, IndexError, KeyError, TypeError):
            return None

    def _header_any_case(self, idx: int, name: str) -> Any:
        """A request header whatever case the client wrote its name in (HTTP names are
        case-insensitive; "explain" and "describe" need no lookup like this, because
        TorchServe sets them itself)."""
        try:
            headers = self.context.get_all_request_header(idx)
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
        wanted = name.lower()
        return next((v for k, v in (headers or {}).items() if str(k).lower() == wanted), None)

    def _header_true(self, idx: int, name: str) -> bool:
        return str(self._header(idx, name)).lower() == "true"

    def _content_type(self, idx: int) -> str | None:
        """The body's content type: TorchServe files it under the parameter's name."""
        for name in ("body", "data"):
            entry = self._header(idx, name)
            if isinstance(entry, dict) and entry.get("content-type"):
                return entry["content-type"]
        value = self._header(idx, "Content-Type") or self._header(idx, "content-type")
        return value if isinstance(value, str) else None

    def _add_metric(self, name: str, value: float, unit: str,
                    metric_type: MetricTypes = MetricTypes.GAUGE,
                    extra: dict[str, str] | None = None) -> None:
        """Report one batch-level metric, with `extra` dimensions after ModelName and Level
        (in serving/metrics.yaml's order: TorchServe's frontend maps them by position); a
        metrics failure never fails a request."""
        metrics = getattr(self.context, "metrics", None)
        if metrics is None:
            return
        try:
            dimensions = [Dimension("ModelName", self.context.model_name), Dimension("Level", "Model")]
            dimensions += [Dimension(key, value) for key, value in (extra or {}).items()]
            metrics.add_metric(name, value, unit, None, dimensions, metric_type)
        except Exception:  # noqa: BLE001
            logger.warning("could not record metric %s", name, exc_info=True)
