"""Sending a run's headlines: requests of up to the handler's `max_texts` headlines, `in_flight`
at a time on threads started once, answered in input order.

A request the handler refuses for one of its headlines (a 400 or 413 naming its index) is split
around it: that headline is sent alone, its refusal becomes its row's `error`, and the others
are answered. A refusal naming no headline (TorchServe's 413 for a body over max_request_size)
splits the request in halves down to single headlines. Any other error stops the run."""
from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, wait
from itertools import islice
from typing import Protocol

from client.api import ClientError, KeyRefused, ServerFailure
from client.tables import Outcome, Record

# TorchServe answers requests that arrive together in one forward pass (batchSize in
# model-config.yaml), so more requests out means bigger passes (docs/batch.md has the figures
# for 4 and 8); 8 takes most of the gain without crowding out other clients of the server.
DEFAULT_IN_FLIGHT = 8
# How long a stopped run waits for the requests it still has out (see `answered_in_order`).
STOP_WAIT_S = 5.0
# Statuses of a refusal that concerns what the request holds (a headline empty or too long,
# too many headlines, a body over TorchServe's max_request_size), not the server or the key.
REFUSAL_STATUSES = frozenset({400, 413})


class Model(Protocol):
    """What answers headlines: NewsClient over REST, or an archive in this process."""

    def send(self, body: dict, explain: bool = False) -> object:
        """The answer to one JSON body ({"text"} or {"texts"}), or ClientError."""

    def metadata(self) -> dict:
        """The handler's description of itself: `labels`, `max_texts`, ..."""


def model_limits(model: Model) -> tuple[int, list[str]]:
    """(max_texts, labels): the handler's own limit on headlines per request, and its classes."""
    metadata = model.metadata()
    try:
        return int(metadata["max_texts"]), [str(c) for c in metadata["labels"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ClientError(f"the model's metadata lacks max_texts or labels ({err!r}): {metadata}") from None


def _refused(err: ClientError) -> bool:
    """Whether the handler refused the request for what it holds (not the server or the key)."""
    if isinstance(err, (ServerFailure, KeyRefused)) or err.status not in REFUSAL_STATUSES:
        return False
    return err.status == 413 or (isinstance(err.body, dict) and "error" in err.body)


def answer_one(model: Model, text: str, explain: bool = False) -> Outcome:
    """One headline sent alone ({"text": ...}, so a refusal speaks of "the headline")."""
    try:
        answer = model.send({"text": text}, explain)
    except ClientError as err:
        if not _refused(err):
            raise
        body = err.body  # the handler's refusal: "<code>: <message>" as the row's error
        coded = isinstance(body, dict) and "error" in body and "message" in body
        return Outcome(error=f"{body['error']}: {body['message']}" if coded else str(err))
    if not isinstance(answer, dict):
        raise ServerFailure(f"the answer to one headline is not a JSON object: {str(answer)[:200]}")
    return Outcome(answer=answer)


def answer_texts(model: Model, texts: list[str], explain: bool = False) -> list[Outcome]:
    """One outcome per headline, in order: answers, and refusals of single headlines."""
    if not texts:
        return []
    try:
        answers = model.send({"texts": list(texts)}, explain)
    except ClientError as err:
        if not _refused(err):
            raise
        index = err.body.get("index") if isinstance(err.body, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(texts):
            return (answer_texts(model, texts[:index], explain) + [answer_one(model, texts[index], explain)]
                    + answer_texts(model, texts[index + 1:], explain))
        if len(texts) == 1:
            return [answer_one(model, texts[0], explain)]
        half = len(texts) // 2
        return answer_texts(model, texts[:half], explain) + answer_texts(model, texts[half:], explain)
    if not isinstance(answers, list) or len(answers) != len(texts):
        raise ServerFailure(f"the answer to {len(texts)} headlines is not a list of {len(texts)}")
    return [Outcome(answer=a) for a in answers]


def answered_in_order(model: Model, records: Iterable[Record], max_texts: int,
                      in_flight: int = DEFAULT_IN_FLIGHT,
                      explain: bool = False) -> Iterator[list[tuple[Record, Outcome]]]:
    """Chunks of up to `max_texts` records with their outcomes, in input order, while up to
    `in_flight` requests are out. When this stops early (an error, an interruption), nothing
    more is sent, and the answers to the requests still out are not written."""
    if max_texts < 1 or in_flight < 1:
        raise ValueError(f"max_texts and in_flight must be positive, not {max_texts} and {in_flight}")
    pending: deque[tuple[list[Record], Future]] = deque()
    senders = _Senders(model, in_flight, explain)
    try:
        for chunk in _chunks(records, max_texts):
            pending.append((chunk, senders.submit(chunk)))
            if len(pending) >= in_flight:
                yield _oldest(pending)
        while pending:
            yield _oldest(pending)
    finally:
        # Stopped early: send nothing more (a chunk still out splits no further), and let the
        # requests still out end, so that a model computing in this process is not cut off
        # by the interpreter's exit (torch aborts), but wait no longer than STOP_WAIT_S for a
        # server that does not answer.
        senders.stop()
        for _, future in pending:
            future.cancel()  # succeeds only for one that no thread has taken yet
        wait([future for _, future in pending], timeout=STOP_WAIT_S)


def _oldest(pending: deque[tuple[list[Record], Future]]) -> list[tuple[Record, Outcome]]:
    """The first pending chunk with its outcomes, once answered (it stays pending until then)."""
    chunk, future = pending[0]
    outcomes = future.result()
    pending.popleft()
    return list(zip(chunk, outcomes, strict=True))


class RunStopped(Exception):
    """A request of a run that has stopped: it is not sent."""


class _Senders:
    """`count` daemon threads that answer chunks of records, each into a Future, through a
    `model` that sends nothing once `stop` is called.

    Started once per run: a thread per request took about a millisecond to start on a busy
    2-core machine. Daemon threads: one still waiting on a hung server when the run stops
    does not hold the process (a ThreadPoolExecutor's threads would, at exit)."""

    def __init__(self, model: Model, count: int, explain: bool) -> None:
        self.model, self.count, self.explain = model, count, explain
        self.stopped = threading.Event()
        self.chunks: queue.SimpleQueue[tuple[Future, list[Record]] | None] = queue.SimpleQueue()
        for _ in range(count):
            threading.Thread(target=self._work, daemon=True, name="news-cnn-request").start()

    def submit(self, chunk: list[Record]) -> Future:
        """The outcomes of `chunk`'s records, once a thread has sent it."""
        future: Future = Future()
        self.chunks.put((future, chunk))
        return future

    def send(self, body: dict, explain: bool = False) -> object:
        """`model.send`, as the threads call it (the splits of a chunk too)."""
        if self.stopped.is_set():
            raise RunStopped("the run has stopped")
        return self.model.send(body, explain)

    def metadata(self) -> dict:
        return self.model.metadata()

    def stop(self) -> None:
        """Send nothing more, and let every thread end once it has answered what it took."""
        self.stopped.set()
        for _ in range(self.count):
            self.chunks.put(None)

    def _work(self) -> None:
        while (job := self.chunks.get()) is not None:
            future, chunk = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            try:
                answers = iter(answer_texts(self, [r.text for r in chunk if r.error is None], self.explain))
                future.set_result([Outcome(error=r.error) if r.error is not None else next(answers)
                                   for r in chunk])
            except BaseException as err:  # noqa: BLE001 - handed to the caller by result()
                future.set_exception(err)


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    records = iter(records)
    while chunk := list(islice(records, size)):
        yield chunk
