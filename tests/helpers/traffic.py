"""Traffic against a served archive, and what it got back.

Every request carries its own correlation id, which the handler echoes: an answer is
`misdelivered` when it echoes another request's id (TorchServe answered some request twice),
and `wrong` when it is the request's own answer but differs from the in-process model's.
A *plain* client gets each request's first try; a *retrying* one (NewsClient's back-off) the
last of its tries.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.harness import disagreement, reference_answers
from serving.properties import MODEL_NAME
from serving.server import TorchServe
from tests.helpers.badinput import JSON
from tests.helpers.checked_load import CheckedLoad, Outcome

# Request budget of a background load that runs until told to stop: far more than its
# deadline allows, so the deadline (or the stop) is what ends it.
UNTIL_STOPPED = 10**7


class Reference:
    """The in-process model's answer to each headline: what a served answer must equal."""

    def __init__(self, artifacts: Path, texts: Sequence[str]) -> None:
        self.answers = reference_answers(artifacts, texts)

    def matches(self, text: str, answer: object) -> bool:
        """Same label and abstention, and every probability within the harness's tolerance."""
        return disagreement(self.answers[text], answer, same=("label", "abstained")) is None


def json_requests(texts: Sequence[str]) -> list[tuple[bytes, str]]:
    """One `{"text": ...}` request per headline."""
    return [(json.dumps({"text": t}).encode(), JSON) for t in texts]


def predictions(ts: TorchServe, timeout_s: float = 60.0, retries: int = 0, backoff: bool = False,
                **options) -> CheckedLoad:
    """A checked load client for the server's /predictions (its inference key read per
    connection unless `headers` are given)."""
    return CheckedLoad(f"{ts.endpoints.inference}/predictions/{MODEL_NAME}",
                            headers=options.pop("headers", lambda: ts.keys().headers("inference")),
                            timeout_s=timeout_s, retries=retries, backoff=backoff, **options)


@contextmanager
def in_background(client: CheckedLoad, texts: Sequence[str], concurrency: int,
                  deadline_s: float) -> Iterator[dict]:
    """Send predictions of `texts` from a background thread while the `with` block runs.

    The load ends at `deadline_s` at the latest; leaving the block (normally or by an
    exception) stops it and waits for it. Afterwards `box["outcomes"]` holds every answer
    (the key is missing when the load itself failed)."""
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("outcomes", client.run(
        json_requests(texts), concurrency, total=UNTIL_STOPPED, deadline_s=deadline_s)), daemon=True)
    thread.start()
    try:
        yield box
    finally:
        client.stop.set()
        thread.join()


@dataclass
class AnswerCheck:
    """Every outcome of a load run, sorted: not answered, answered for another request, or
    answered wrongly (a request's own answer that differs from the in-process model)."""

    failed: int
    misdelivered: int
    wrong: int
    examples: dict

    def as_dict(self) -> dict:
        """The counts and examples as they go into a case's figures."""
        return {"failed": self.failed, "misdelivered": self.misdelivered, "wrong": self.wrong,
                **{k: v for k, v in self.examples.items() if v}}


def check_answers(outcomes: Sequence[Outcome], texts: Sequence[str], reference: Reference,
                  limit: int = 5) -> AnswerCheck:
    """Sort `outcomes` (see AnswerCheck), with up to `limit` examples of each problem."""
    failed = misdelivered = wrong = 0
    examples: dict[str, list] = {"misdelivered_examples": [], "wrong_examples": []}
    for o in outcomes:
        text = texts[o.index % len(texts)]
        if o.misdelivered:
            misdelivered += 1
            if len(examples["misdelivered_examples"]) < limit:
                examples["misdelivered_examples"].append(
                    {"index": o.index, "status": o.status, "echoed_id": o.echoed_id,
                     "previous_on_connection": previous_index(outcomes, o)})
        elif o.status != 200:
            failed += 1
        elif not reference.matches(text, o.json()):
            wrong += 1
            if len(examples["wrong_examples"]) < limit:
                examples["wrong_examples"].append(
                    {"index": o.index, "sent": text, "expected": reference.answers[text],
                     "got": o.body.decode(errors="replace")[:300]})
    return AnswerCheck(failed, misdelivered, wrong, examples)


def lost(outcomes: Sequence[Outcome]) -> dict:
    """Requests lost by a plain client (its first try failed) and by the retrying one (every
    try failed), with the statuses each saw; rerouted requests are not counted."""
    sent = [o for o in outcomes if not o.first_try.rerouted]
    plain = [o.first_try for o in sent if o.first_try.status != 200 or o.first_try.misdelivered]
    retrying = [o for o in sent if not o.rerouted and (o.status != 200 or o.misdelivered)]
    return {"sent": len(sent), "plain_lost": len(plain),
            "plain_lost_share": round(len(plain) / len(sent), 5) if sent else None,
            "plain_statuses": statuses(plain),
            "retrying_lost": len(retrying), "retrying_statuses": statuses(retrying),
            "retried_requests": sum(bool(o.earlier) for o in sent)}


def previous_index(outcomes: Sequence[Outcome], o: Outcome) -> int | None:
    """The request sent just before `o` on the same connection, if any (`outcomes` holds
    every try: with retries, pass each outcome's `tries()`)."""
    earlier = [p for p in outcomes if p.connection == o.connection and p.started < o.started]
    return max(earlier, key=lambda p: p.started).index if earlier else None


def statuses(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many outcomes got each HTTP status ("0": no answer)."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[str(o.status)] = counts.get(str(o.status), 0) + 1
    return counts


def failure_errors(outcomes: Sequence[Outcome]) -> list[str]:
    """Up to 5 distinct reasons (socket error, else the start of the body) for failed requests."""
    return sorted({o.error or o.body.decode(errors="replace")[:120]
                   for o in outcomes if o.status != 200})[:5]


def healthy_with(ts: TorchServe, workers: int) -> bool:
    """/ping is healthy and exactly `workers` workers are READY."""
    try:
        return ts.ping() and ts.ready_workers(MODEL_NAME) == workers
    except (requests.RequestException, ValueError, KeyError, IndexError):
        return False
