"""`make soak`: does the served model keep working under load, faults, bad input and attack?

Five cases against one TorchServe started with the project's config.properties (free
loopback ports, token authorization on, model API off), each bounded in count and time,
each printing its figures and returning them with `passed`:

1. sustained: many predictions at high concurrency; zero errors, every answer equal to the
   in-process Predictor's, worker memory growth under 10 %;
2. crash: kill -9 one worker during load; what a plain client (no retries: each request's
   first try) loses while it restarts and what a retrying one (NewsClient's back-off) loses,
   every successful answer right, healthy afterwards with the configured worker count;
   crash_workers: the same at 1 and 4 workers (does a setting lower the plain client's loss?);
3. scaling: 1 -> 4 -> 1 workers through the management API during load; zero failures for
   the retrying client, and the plain client's loss (first tries that failed);
4. barrage: malformed requests (bench.badinput) mixed with good ones; 4xx JSON for each bad
   one, the right answer for each good one, no 5xx, no worker restart;
5. auth: no key / a wrong key refused on inference and management, register API refused,
   every listening socket on loopback;
6. stop: under load behind a simulated balancer polling the readiness URL, a graceful stop
   (readiness false, wait for in-flight requests) and, on a fresh server, an immediate one:
   accepted requests lost by a plain and by a retrying client.

Every request carries its own correlation id, which the handler echoes: an answer is
`misdelivered` when it echoes another request's id (TorchServe answered some request twice),
and `wrong` when it is the request's own answer but differs from the in-process Predictor's.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import psutil
import requests

from bench import archives, headlines, load, server
from bench.badinput import JSON, TEXT, bad_requests, edge_good_requests, lenient_requests
from serving.properties import MODEL_NAME, read_properties
from serving.scaling import ScaleError
from serving.server import TorchServe

# Request budget of a background load that runs until told to stop: far more than its
# case_deadline_s allows, so the deadline (or the stop) is what ends it.
UNTIL_STOPPED = 10**7
PROBABILITY_TOLERANCE = 1e-4  # answers are rounded to 6 digits; batching may move the last ones
MEMORY_GROWTH_LIMIT = 0.10
CRASH_FAILURE_LIMIT = 0.01
# What the simulated balancer of the stop case does: poll the readiness URL this often.
BALANCER_POLL_S = 0.5
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@dataclass
class SoakSizes:
    """How much each case sends (full sizes: `make soak`; quick: the test suite)."""

    sustained_requests: int = 20_000
    sustained_concurrency: int = 32
    crash_concurrency: int = 16
    crash_warmup: int = 300
    crash_after_recovery: int = 500
    # The crash and stop cases' client retries like NewsClient: up to this many times, after
    # a jittered exponential back-off; its first tries are what a plain client gets.
    client_retries: int = 4
    crash_worker_counts: tuple[int, ...] = (1, 4)
    stop_concurrency: int = 8
    stop_warmup: int = 300
    scaling_concurrency: int = 16
    # Requests between two scalings: at ~2,000 req/s about 1.5 s, so that the steps' windows
    # (each with 1 s of slack for late answers) never overlap and failures are attributed.
    scaling_between: int = 3000
    barrage_good: int = 200
    barrage_random: int = 150
    barrage_concurrency: int = 8
    case_deadline_s: float = 300.0
    # The scaling case's client retries a failed try (no answer within scaling_timeout_s, a
    # 5xx, or another request's answer) up to scaling_retries times on a new connection, as
    # NewsClient does. Answers normally take well under 0.1 s; a request TorchServe drops at
    # a scale-down is never answered.
    scaling_retries: int = 2
    scaling_timeout_s: float = 5.0

    @classmethod
    def quick(cls) -> "SoakSizes":
        """Small counts for `make test` (a minute or so in all)."""
        return cls(sustained_requests=1_000, sustained_concurrency=16, crash_warmup=100,
                   crash_after_recovery=100, scaling_between=2500, barrage_good=40,
                   barrage_random=150, case_deadline_s=120.0)


class Expectations:
    """What the in-process Predictor answers for each headline (the reference)."""

    def __init__(self, artifacts: Path, texts: Sequence[str]) -> None:
        from model.predictor import Predictor
        predictor = Predictor.from_dir(artifacts)
        unique = list(dict.fromkeys(texts))
        self.answers = dict(zip(unique, predictor.predict(unique)))

    def matches(self, text: str, answer) -> bool:
        """Same label and abstention, and every probability within PROBABILITY_TOLERANCE
        (an abstained headline has none: both must say so)."""
        expected = self.answers[text]
        if not isinstance(answer, dict) or answer.get("label") != expected["label"] \
                or answer.get("abstained") != expected["abstained"]:
            return False
        got, wanted = answer.get("probabilities"), expected["probabilities"]
        if wanted is None or got is None:
            return got is wanted
        return set(got) == set(wanted) and all(
            abs(got[k] - v) <= PROBABILITY_TOLERANCE for k, v in wanted.items())


# --- helpers ------------------------------------------------------------------------------
def _json_requests(texts: Sequence[str]) -> list[tuple[bytes, str]]:
    return [(json.dumps({"text": t}).encode(), JSON) for t in texts]


def _predictions(ts: TorchServe, timeout_s: float = 60.0, retries: int = 0, backoff: bool = False,
                 **options) -> load.CheckedLoad:
    return load.CheckedLoad(f"{ts.endpoints.inference}/predictions/{MODEL_NAME}",
                            headers=options.pop("headers", lambda: ts.keys().headers("inference")),
                            timeout_s=timeout_s, retries=retries, backoff=backoff, **options)


def _plain_and_retrying(outcomes: Sequence[load.Outcome]) -> dict:
    """Requests lost by a plain client (its first try failed) and by the retrying one (every
    try failed), with the statuses each saw; rerouted requests are not counted."""
    sent = [o for o in outcomes if not o.first_try.rerouted]
    plain = [o.first_try for o in sent if o.first_try.status != 200 or o.first_try.misdelivered]
    retrying = [o for o in sent if not o.rerouted and (o.status != 200 or o.misdelivered)]
    return {"sent": len(sent), "plain_lost": len(plain),
            "plain_lost_share": round(len(plain) / len(sent), 5) if sent else None,
            "plain_statuses": _statuses(plain),
            "retrying_lost": len(retrying), "retrying_statuses": _statuses(retrying),
            "retried_requests": sum(bool(o.earlier) for o in sent)}


@dataclass
class AnswerCheck:
    """Every outcome of a load run, sorted: not answered, answered for another request, or
    answered wrongly (a request's own answer that differs from the in-process model)."""

    failed: int
    misdelivered: int
    wrong: int
    examples: dict

    def as_dict(self) -> dict:
        """The counts and examples as they go into a case's result."""
        return {"failed": self.failed, "misdelivered": self.misdelivered, "wrong": self.wrong,
                **{k: v for k, v in self.examples.items() if v}}


def _check_answers(outcomes: Sequence[load.Outcome], texts: Sequence[str],
                   expect: Expectations, limit: int = 5) -> AnswerCheck:
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
                     "previous_on_connection": _previous_index(outcomes, o)})
        elif o.status != 200:
            failed += 1
        elif not expect.matches(text, o.json()):
            wrong += 1
            if len(examples["wrong_examples"]) < limit:
                examples["wrong_examples"].append(
                    {"index": o.index, "sent": text, "expected": expect.answers[text],
                     "got": o.body.decode(errors="replace")[:300]})
    return AnswerCheck(failed, misdelivered, wrong, examples)


def _previous_index(outcomes: Sequence[load.Outcome], o: load.Outcome) -> int | None:
    """The request sent just before `o` on the same connection, if any (`outcomes` holds
    every try: with retries, pass each outcome's `tries()`)."""
    earlier = [p for p in outcomes if p.connection == o.connection and p.started < o.started]
    return max(earlier, key=lambda p: p.started).index if earlier else None


def _statuses(outcomes: Sequence[load.Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[str(o.status)] = counts.get(str(o.status), 0) + 1
    return counts


@contextmanager
def _load_in_background(client: load.CheckedLoad, texts: Sequence[str], concurrency: int,
                        deadline_s: float) -> Iterator[dict]:
    """Send predictions of `texts` from a background thread while the `with` block runs.

    The load ends at `deadline_s` at the latest; leaving the block (normally or by an
    exception) stops it and waits for it. Afterwards `box["outcomes"]` holds every answer
    (the key is missing when the load itself failed)."""
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("outcomes", client.run(
        _json_requests(texts), concurrency, total=UNTIL_STOPPED, deadline_s=deadline_s)), daemon=True)
    thread.start()
    try:
        yield box
    finally:
        client.stop.set()
        thread.join()


def _failure_errors(outcomes: Sequence[load.Outcome]) -> list[str]:
    """Up to 5 distinct reasons (socket error, else the start of the body) for failed requests."""
    return sorted({o.error or o.body.decode(errors="replace")[:120]
                   for o in outcomes if o.status != 200})[:5]


def _problem(case: str, content_type: str | None, o: load.Outcome) -> dict:
    """A barrage request that did not get the answer it should have."""
    return {"case": case, "content_type": content_type, "status": o.status,
            "body": (o.error or o.body.decode(errors="replace"))[:200]}


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def _healthy_with(ts: TorchServe, workers: int) -> bool:
    try:
        return ts.ping() and ts.ready_workers(MODEL_NAME) == workers
    except (requests.RequestException, ValueError, KeyError, IndexError):
        return False


# --- the cases ----------------------------------------------------------------------------
def sustained(ts: TorchServe, texts: list[str], expect: Expectations, sizes: SoakSizes) -> dict:
    """Many predictions at high concurrency: no error, all right, memory flat."""
    client = _predictions(ts)
    warm = client.run(_json_requests(texts), sizes.sustained_concurrency,
                      total=min(500, sizes.sustained_requests))
    before = server.worker_rss(ts, MODEL_NAME)
    start = time.monotonic()
    outcomes = client.run(_json_requests(texts), sizes.sustained_concurrency,
                          total=sizes.sustained_requests, deadline_s=sizes.case_deadline_s)
    seconds = time.monotonic() - start
    after = server.worker_rss(ts, MODEL_NAME)
    check = _check_answers(outcomes, texts, expect)
    same_workers = sorted(before) == sorted(after)
    growth = (sum(after.values()) - sum(before.values())) / sum(before.values()) if before else None
    latencies = [o.latency_s * 1000 for o in outcomes]
    result = {
        "requests": len(outcomes), "planned": sizes.sustained_requests,
        "concurrency": sizes.sustained_concurrency, "seconds": round(seconds, 1),
        "rps": round(len(outcomes) / seconds, 1), **check.as_dict(),
        "warmup_failed": sum(o.status != 200 for o in warm),
        "statuses": _statuses(outcomes),
        "p50_ms": round(load.percentile(latencies, 50), 2),
        "p99_ms": round(load.percentile(latencies, 99), 2),
        "worker_rss_mib_before": {str(k): round(v, 1) for k, v in before.items()},
        "worker_rss_mib_after": {str(k): round(v, 1) for k, v in after.items()},
        "memory_growth": round(growth, 4) if growth is not None else None,
        "same_worker_pids": same_workers,
    }
    result["passed"] = (len(outcomes) == sizes.sustained_requests
                        and check.failed == check.misdelivered == check.wrong == 0
                        and same_workers and growth is not None and growth < MEMORY_GROWTH_LIMIT)
    return result


def crash(ts: TorchServe, texts: list[str], expect: Expectations, sizes: SoakSizes,
          workers: int) -> dict:
    """kill -9 one worker during load; count what a plain and a retrying client lose while
    TorchServe restarts it (one load: each request's first try is the plain client's)."""
    client = _predictions(ts, retries=sizes.client_retries, backoff=True)
    with _load_in_background(client, texts, sizes.crash_concurrency, sizes.case_deadline_s) as box:
        _wait_for(lambda: client.completed >= sizes.crash_warmup, 60, "warm-up requests")
        victim = server.worker_pids(ts, MODEL_NAME)[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # Recovered: the configured number of READY workers again, none of them the victim.
        _wait_for(lambda: _healthy_with(ts, workers) and victim not in server.worker_pids(ts, MODEL_NAME),
                  120, "the killed worker's replacement")
        recovered_at = time.monotonic()
        done_at_recovery = client.completed
        _wait_for(lambda: client.completed >= done_at_recovery + sizes.crash_after_recovery, 60,
                  "requests after recovery")
    outcomes = box["outcomes"]
    check = _check_answers(outcomes, texts, expect)
    firsts = [o.first_try for o in outcomes]
    window = [t for t in firsts if killed_at <= t.finished <= recovered_at]
    failed_window = sum(t.status != 200 for t in window)
    lost = _plain_and_retrying(outcomes)
    result = {
        "workers": workers, "requests": len(outcomes), "concurrency": sizes.crash_concurrency,
        "killed_pid": victim, "recovery_s": round(recovered_at - killed_at, 2),
        "requests_during_recovery": len(window), "plain_failed_during_recovery": failed_window,
        **lost, **check.as_dict(),
        "plain_failed_share_during_recovery": round(failed_window / len(window), 5) if window else None,
        "failure_errors": _failure_errors([t for o in outcomes for t in o.tries()]),
        "workers_after": ts.ready_workers(MODEL_NAME), "healthy_after": ts.ping(),
    }
    # Only requests in flight on the killed worker fail, all while it is replaced; the
    # retrying client ends with every answer, each right.
    result["passed"] = (check.wrong == check.misdelivered == check.failed == 0
                        and result["healthy_after"] and result["workers_after"] == workers
                        and lost["plain_lost"] == failed_window
                        and failed_window <= CRASH_FAILURE_LIMIT * max(len(window), 1))
    return result


def crash_workers(ts: TorchServe, texts: list[str], expect: Expectations, sizes: SoakSizes,
                  workers: int) -> dict:
    """The crash case at other worker counts (scaled through the management API), to see
    whether more workers lower what a plain client loses; the server ends as configured."""
    runs = {}
    try:
        for count in sizes.crash_worker_counts:
            ts.scale(MODEL_NAME, count)
            _wait_for(lambda count=count: _healthy_with(ts, count), 120, f"{count} READY workers")
            run = crash(ts, texts, expect, sizes, count)
            runs[str(count)] = {k: run[k] for k in (
                "requests", "recovery_s", "requests_during_recovery", "plain_lost", "plain_lost_share",
                "plain_statuses", "retrying_lost", "retrying_statuses", "wrong", "misdelivered", "passed")}
    finally:
        ts.scale(MODEL_NAME, workers)
    # Informative: with 1 worker a crash leaves nothing to answer for seconds, so losses are
    # expected; what must hold is that no answer is wrong or another request's.
    return {"runs": runs, "passed": all(r["wrong"] == r["misdelivered"] == 0 for r in runs.values())}


class _Balancer:
    """A load balancer's view of one server: polls its key-less readiness URL every
    BALANCER_POLL_S and keeps it in rotation only while the answer is 200."""

    def __init__(self, ready_url: str) -> None:
        self.ready_url = ready_url
        self.in_rotation = True
        self.left_rotation_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(BALANCER_POLL_S):
            try:
                ok = requests.get(self.ready_url, timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            if not ok and self.in_rotation:
                self.in_rotation, self.left_rotation_at = False, time.monotonic()

    def __enter__(self) -> "_Balancer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def stop(ts: TorchServe, texts: list[str], expect: Expectations, sizes: SoakSizes, drain: bool) -> dict:
    """Stop `ts` under load behind a _Balancer: gracefully (`drain`: readiness false, then wait
    for in-flight requests) or at once. Counts the accepted requests a plain client (first
    try) and a retrying client lose; requests the balancer sent elsewhere are not lost."""
    headers = ts.keys().headers("inference")  # the key file goes with the server
    with _Balancer(f"{ts.endpoints.health}/ready") as balancer:
        client = _predictions(ts, retries=sizes.client_retries, backoff=True, headers=headers,
                              route=lambda: balancer.in_rotation)
        with _load_in_background(client, texts, sizes.stop_concurrency, sizes.case_deadline_s) as box:
            _wait_for(lambda: client.completed >= sizes.stop_warmup, 60, "warm-up requests")
            started = time.monotonic()
            report = ts.drain(notice_s=2 * BALANCER_POLL_S) if drain else None
            ts.stop()
            stopped = time.monotonic()
            _wait_for(lambda: not balancer.in_rotation, 10, "the balancer to leave the server")
    outcomes = box["outcomes"]
    check = _check_answers([o for o in outcomes if not o.rerouted], texts, expect)
    lost = _plain_and_retrying(outcomes)
    result = {"drain": drain, "requests": len(outcomes), "concurrency": sizes.stop_concurrency,
              "stop_s": round(stopped - started, 2), "drain_report": report,
              "left_rotation_after_s": round(balancer.left_rotation_at - started, 2),
              "rerouted": sum(o.rerouted for o in outcomes), **lost,
              "wrong": check.wrong, "misdelivered": check.misdelivered,
              "failure_errors": _failure_errors([t for o in outcomes for t in o.tries()
                                                 if not t.rerouted])}
    result["passed"] = (check.wrong == check.misdelivered == 0
                        and (not drain or lost["plain_lost"] == lost["retrying_lost"] == 0))
    return result


def scaling(ts: TorchServe, texts: list[str], expect: Expectations, sizes: SoakSizes,
            workers: int) -> dict:
    """Scale 1 -> 4 -> 1 workers through the management API during load: no request fails
    for a client that retries, and every try TorchServe failed is counted and explained."""
    ts.scale(MODEL_NAME, 1)
    client = _predictions(ts, timeout_s=sizes.scaling_timeout_s, retries=sizes.scaling_retries)
    steps = []
    try:
        with _load_in_background(client, texts, sizes.scaling_concurrency, sizes.case_deadline_s) as box:
            for target in (4, 1):
                mark = client.completed
                _wait_for(lambda mark=mark: client.completed >= mark + sizes.scaling_between, 60,
                          "requests between scalings")
                start = time.monotonic()
                answer = ts.scale(MODEL_NAME, target)
                returned = time.monotonic()
                # "synchronous" scaling can return before the last new worker is READY.
                try:
                    _wait_for(lambda target=target: ts.ready_workers(MODEL_NAME) == target, 60,
                              f"{target} READY workers")
                except TimeoutError:
                    pass
                end = time.monotonic()
                steps.append({"workers": target, "api_attempts": answer["attempts"],
                              "api_seconds": round(returned - start, 2),
                              "ready_seconds": round(end - start, 2),
                              "ready_after": ts.ready_workers(MODEL_NAME), "_window": (start, end)})
            mark = client.completed
            _wait_for(lambda: client.completed >= mark + sizes.scaling_between, 60, "requests after scaling")
    except BaseException:
        with suppress(ScaleError):  # best effort: the first error is the one to report
            ts.scale(MODEL_NAME, workers)
        raise
    ts.scale(MODEL_NAME, workers)  # leave the server as configured for the next case
    outcomes = box["outcomes"]
    check = _check_answers(outcomes, texts, expect)  # the answers the client ended up with
    # What TorchServe did: every failed try. A stopping worker fails its batch ("Worker
    # died."), drops a job it had taken (never answered, pytorch/serve#1101), or puts jobs it
    # had just answered back in the queue (answered twice: the copy reaches the next request
    # on that connection). Each is attributed to the step it overlapped.
    tries = [t for o in outcomes for t in o.tries()]
    failed_tries = [t for t in tries if t.needs_retry]
    for step in steps:
        start, end = step.pop("_window")
        during = [t for t in failed_tries if t.started <= end + 1.0 and t.finished >= start]
        step["failed_tries"] = len(during)
    result = {"requests": len(outcomes), "concurrency": sizes.scaling_concurrency,
              "retries_allowed": sizes.scaling_retries, "steps": steps, **check.as_dict(),
              "statuses": _statuses(outcomes),
              "retried_requests": sum(bool(o.earlier) for o in outcomes),
              "plain_lost": sum(o.first_try.needs_retry for o in outcomes),
              "failed_tries": len(failed_tries),
              "worker_died": sum(t.status in (500, 503, 507) and b"Worker died" in t.body
                                 for t in failed_tries),
              "lost_unanswered": sum(t.status == 0 and "timed out" in t.error for t in failed_tries),
              "answered_twice": sum(t.misdelivered for t in failed_tries),
              "answered_twice_examples": [
                  {"index": t.index, "echoed_id": t.echoed_id,
                   "previous_on_connection": _previous_index(tries, t)}
                  for t in failed_tries if t.misdelivered][:5],
              "failure_errors": _failure_errors(tries)}
    result["passed"] = (check.failed == check.misdelivered == check.wrong == 0
                        and [s["ready_after"] for s in steps] == [4, 1])
    return result


def barrage(ts: TorchServe, texts: list[str], expect: Expectations, sizes: SoakSizes,
            max_request_size: int, max_chars: int, max_texts: int) -> dict:
    """Malformed requests mixed with good ones: 4xx JSON for bad, right answers for good."""
    bad = bad_requests(max_request_size, max_chars, max_texts, random_count=sizes.barrage_random)
    edge = edge_good_requests(max_chars)
    good_texts = [texts[i % len(texts)] for i in range(sizes.barrage_good)] + [t for _, t in edge]
    plan: list[tuple[str, str, bytes, str | None]] = [("bad", name, body, ctype) for name, body, ctype in bad]
    plan += [("lenient", name, body, ctype) for name, body, ctype in lenient_requests()]
    for i, text in enumerate(good_texts):
        # Every third good headline goes as text/plain when it is printable and has a UTF-8
        # form (a lone surrogate has none); the others go as JSON.
        if i % 3 == 0 and text.isprintable() and text.encode(errors="ignore").decode() == text:
            plan.append(("good", text, text.encode(), TEXT))
        else:
            plan.append(("good", text, json.dumps({"text": text}).encode(), JSON))
    random.Random(1).shuffle(plan)
    pids_before = server.worker_pids(ts, MODEL_NAME)
    outcomes = _predictions(ts).run([(body, ctype) for _, _, body, ctype in plan],
                                    sizes.barrage_concurrency, deadline_s=sizes.case_deadline_s)
    problems = []
    lenient = []
    counts = {"bad": 0, "good": 0, "lenient": 0, "bad_4xx_json": 0, "good_right": 0, "5xx": 0, "no_answer": 0,
              "frontend_413_without_body": 0}
    for o in outcomes:
        kind, name, sent, ctype = plan[o.index]
        counts[kind] += 1
        body = o.json()
        if o.misdelivered:
            problems.append(_problem(f"answered with request {o.echoed_id}'s answer: {name[:60]!r}",
                                     ctype, o))
            continue
        if o.status >= 500:
            counts["5xx"] += 1
        if o.status == 0:
            counts["no_answer"] += 1
        if kind == "bad":
            if 400 <= o.status < 500 and isinstance(body, dict):
                counts["bad_4xx_json"] += 1
            elif o.status == 413 and not o.body and len(sent) > max_request_size:
                # TorchServe's HTTP layer refuses bodies over max_request_size before any of
                # our code runs, with an empty body: counted apart, not a handler failure.
                counts["frontend_413_without_body"] += 1
            else:
                problems.append(_problem(name, ctype, o))
        elif kind == "lenient":
            answered = o.status == 200 and isinstance(body, dict) and "label" in body
            refused = 400 <= o.status < 500 and isinstance(body, dict)
            lenient.append({"case": name, "status": o.status, "ok": answered or refused})
            if not (answered or refused):
                problems.append(_problem(name, ctype, o))
        elif o.status == 200 and expect.matches(name, body):
            counts["good_right"] += 1
        else:
            problems.append(_problem(f"good: {name[:60]!r}", ctype, o))
    pids_after = server.worker_pids(ts, MODEL_NAME)
    result = {"requests": len(outcomes), **counts, "statuses": _statuses(outcomes),
              "lenient_outcomes": lenient,
              "worker_pids_unchanged": pids_before == pids_after, "healthy_after": ts.ping(),
              "problems": problems[:40], "problem_count": len(problems)}
    result["passed"] = (len(outcomes) == len(plan) and not problems and counts["5xx"] == 0
                        and result["worker_pids_unchanged"] and result["healthy_after"])
    return result


def auth(ts: TorchServe) -> dict:
    """Keys are required on inference and management; no registering; loopback only."""
    keys = ts.keys()
    inference, management = ts.endpoints.inference, ts.endpoints.management
    body = json.dumps({"text": "Stocks rally"})
    cases = [
        ("predict without key", "POST", f"{inference}/predictions/{MODEL_NAME}", {}),
        ("predict with wrong key", "POST", f"{inference}/predictions/{MODEL_NAME}",
         {"Authorization": "Bearer wrong"}),
        ("predict with management key", "POST", f"{inference}/predictions/{MODEL_NAME}",
         keys.headers("management")),
        ("explain without key", "POST", f"{inference}/explanations/{MODEL_NAME}", {}),
        ("ping without key", "GET", f"{inference}/ping", {}),
        ("list models without key", "GET", f"{management}/models", {}),
        ("list models with wrong key", "GET", f"{management}/models", {"Authorization": "Bearer wrong"}),
        ("list models with inference key", "GET", f"{management}/models", keys.headers("inference")),
        ("scale without key", "PUT", f"{management}/models/{MODEL_NAME}?min_worker=3", {}),
        ("new token without API key", "POST", f"{management}/token?type=inference", {}),
    ]
    refused = []
    for name, method, url, headers in cases:
        r = requests.request(method, url, data=body if method == "POST" else None,
                             headers={"Content-Type": "application/json", **headers}, timeout=30)
        refused.append({"case": name, "status": r.status_code,
                        "invalid_key": "InvalidKeyException" in r.text, "body": r.text[:160]})
    # With the right management key, registering and unregistering models stay refused.
    model_api = []
    for name, method, url in (
            ("register a model", "POST", f"{management}/models?url={MODEL_NAME}.mar&model_name=other"),
            ("register from a URL", "POST", f"{management}/models?url=http://127.0.0.1:1/x.mar"),
            ("unregister the model", "DELETE", f"{management}/models/{MODEL_NAME}")):
        r = requests.request(method, url, headers=keys.headers("management"), timeout=30)
        model_api.append({"case": name, "status": r.status_code, "body": r.text[:160]})
    listening = listening_sockets(ts)
    # With the right keys everything still works (the refusals are not a broken server).
    ok_predict = requests.post(f"{inference}/predictions/{MODEL_NAME}", data=body, timeout=30,
                               headers={"Content-Type": "application/json", **keys.headers("inference")})
    ok_models = requests.get(f"{management}/models", headers=keys.headers("management"), timeout=30)
    result = {
        "refused": refused, "model_api": model_api, "listening": listening,
        "with_keys": {"predict": ok_predict.status_code, "list_models": ok_models.status_code},
        "model_still_registered": ts.ready_workers(MODEL_NAME) > 0,
    }
    result["passed"] = (all(c["status"] == 400 and c["invalid_key"] for c in refused[:-1])
                        and 400 <= refused[-1]["status"] < 500
                        and all(400 <= c["status"] < 500 for c in model_api)
                        and all(s["ip"] in LOOPBACK for s in listening) and bool(listening)
                        and ok_predict.status_code == 200 and ok_models.status_code == 200
                        and result["model_still_registered"])
    return result


def listening_sockets(ts: TorchServe) -> list[dict]:
    """Every TCP socket the frontend and its workers listen on."""
    pid = ts.pid()
    procs = [psutil.Process(pid)] + server.worker_processes(ts) if pid else []
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                out.append({"pid": p.pid, "ip": c.laddr.ip, "port": c.laddr.port})
    return out


# --- the suite ----------------------------------------------------------------------------
def _print_case(name: str, result: dict) -> None:
    figures = {k: v for k, v in result.items()
               if k not in ("problems", "refused", "model_api", "listening", "worker_rss_mib_before",
                            "worker_rss_mib_after", "passed")}
    print(f"{name}: {'PASSED' if result['passed'] else 'FAILED'} {json.dumps(figures)}")
    if not result["passed"]:
        for key in ("problems", "refused", "model_api", "listening"):
            if key in result:
                print(f"  {key}: {json.dumps(result[key])[:2000]}")


CASES = ("sustained", "crash", "crash_workers", "scaling", "barrage", "auth", "stop")


def run(mar: Path, artifacts: Path, config: Path, sizes: SoakSizes, data: Path | None = None,
        cases: Sequence[str] = CASES) -> dict:
    """Start TorchServe with the project's config, run `cases` in order, stop it."""
    texts = headlines.load(data, limit=500)
    model_config = archives.read_model_config(mar)
    workers = int(model_config.get("minWorkers", 1))
    handler_settings = model_config.get("handler") or {}
    max_chars = int(handler_settings.get("max_chars", 1000))
    # The reference answers also cover the odd-but-valid headlines of the barrage.
    expect = Expectations(artifacts, texts + [t for _, t in edge_good_requests(max_chars)])
    properties = read_properties(config)
    # The stop case stops the server the others use: it always runs last.
    cases = [c for c in cases if c != "stop"] + (["stop"] if "stop" in cases else [])
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "sizes": asdict(sizes),
                     "workers": workers, "loadavg_start": list(os.getloadavg()), "cases": {}}
    try:
        store = root / "store"
        archives.copy_into(mar, store)
        ts = server.start(root / "server", store, {MODEL_NAME: mar.name}, workers, base=config)
        try:
            for name in cases:
                start = time.monotonic()
                if name == "sustained":
                    result = sustained(ts, texts, expect, sizes)
                elif name == "crash":
                    result = crash(ts, texts, expect, sizes, workers)
                elif name == "crash_workers":
                    result = crash_workers(ts, texts, expect, sizes, workers)
                elif name == "scaling":
                    result = scaling(ts, texts, expect, sizes, workers)
                elif name == "barrage":
                    result = barrage(ts, texts, expect, sizes,
                                     int(properties.get("max_request_size", 6553500)),
                                     max_chars,
                                     int(handler_settings.get("max_texts", 64)))
                elif name == "auth":
                    result = auth(ts)
                elif name == "stop":
                    # Last: it stops this server, then compares a stop without draining on a fresh one.
                    result = {"graceful": stop(ts, texts, expect, sizes, drain=True)}
                    ts = server.start(root / "server-2", store, {MODEL_NAME: mar.name}, workers, base=config)
                    result["immediate"] = stop(ts, texts, expect, sizes, drain=False)
                    result["passed"] = result["graceful"]["passed"] and result["immediate"]["passed"]
                else:
                    raise ValueError(f"unknown soak case {name!r}")
                result["case_seconds"] = round(time.monotonic() - start, 1)
                results["cases"][name] = result
                _print_case(name, result)
        finally:
            ts.stop()
    except BaseException:
        print(f"kept {root} for its logs")
        raise
    shutil.rmtree(root, ignore_errors=True)
    results["loadavg_end"] = list(os.getloadavg())
    return results
