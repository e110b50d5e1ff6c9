"""Malformed requests (tests/helpers/badinput.py) mixed with good ones: a 4xx with a JSON
body for each bad one, the right answer for each good one, no 5xx, no worker restart."""
from __future__ import annotations

import json
import random

import pytest

from bench import served_models
from serving.properties import MODEL_NAME
from tests.helpers import traffic
from tests.helpers.badinput import JSON, TEXT, bad_requests, edge_good_requests, lenient_requests
from tests.helpers.checked_load import Outcome


def test_bad_input_catalogue_is_large_varied_and_really_bad():
    cases = bad_requests(max_request_size=1000, max_chars=50, max_texts=3, random_count=150)
    assert len(cases) >= 200
    names = [name for name, _, _ in cases]
    assert len(set(names)) == len(names)
    for name, body, _ in cases:
        if name.startswith("random bytes"):
            with pytest.raises(UnicodeDecodeError):
                body.decode("utf-8")
        if name.startswith("huge"):
            assert len(body) > 1000
        if name.startswith("over-long"):
            assert len(body) > 50
    assert {c for _, _, c in cases} >= {None, JSON, TEXT, "application/octet-stream"}


def _plan(texts, sizes, archive) -> list[tuple[str, str, bytes, str | None]]:
    """(kind, name, body, content type) of every request, shuffled: bad, lenient and good."""
    bad = bad_requests(archive.max_request_size, archive.max_chars, archive.max_texts,
                       random_count=sizes.barrage_random)
    edge = edge_good_requests(archive.max_chars)
    good_texts = [texts[i % len(texts)] for i in range(sizes.barrage_good)] + [t for _, t in edge]
    plan = [("bad", name, body, ctype) for name, body, ctype in bad]
    plan += [("lenient", name, body, ctype) for name, body, ctype in lenient_requests()]
    for i, text in enumerate(good_texts):
        # Every third good headline goes as text/plain when it is printable and has a UTF-8
        # form (a lone surrogate has none); the others go as JSON.
        if i % 3 == 0 and text.isprintable() and text.encode(errors="ignore").decode() == text:
            plan.append(("good", text, text.encode(), TEXT))
        else:
            plan.append(("good", text, json.dumps({"text": text}).encode(), JSON))
    random.Random(1).shuffle(plan)
    return plan


def _problem(case: str, content_type: str | None, o: Outcome) -> dict:
    """A request that did not get the answer it should have."""
    return {"case": case, "content_type": content_type, "status": o.status,
            "body": (o.error or o.body.decode(errors="replace"))[:200]}


@pytest.mark.integration
@pytest.mark.soak
def test_bad_input_barrage(served, headlines_sent, reference, soak_sizes, soak_archive, record):
    plan = _plan(headlines_sent, soak_sizes, soak_archive)
    pids_before = served_models.worker_pids(served, MODEL_NAME)
    outcomes = traffic.predictions(served).run([(body, ctype) for _, _, body, ctype in plan],
                                               soak_sizes.barrage_concurrency,
                                               deadline_s=soak_sizes.case_deadline_s)
    problems, lenient = [], []
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
        counts["5xx"] += o.status >= 500
        counts["no_answer"] += o.status == 0
        if kind == "bad":
            if 400 <= o.status < 500 and isinstance(body, dict):
                counts["bad_4xx_json"] += 1
            elif o.status == 413 and not o.body and len(sent) > soak_archive.max_request_size:
                # TorchServe's HTTP layer refuses bodies over max_request_size before any of
                # our code runs, with an empty body: counted apart, not a handler failure.
                counts["frontend_413_without_body"] += 1
            else:
                problems.append(_problem(name, ctype, o))
        elif kind == "lenient":
            # Read either way: refused with a 4xx JSON answer, or answered as a plain headline.
            answered = o.status == 200 and isinstance(body, dict) and "label" in body
            refused = 400 <= o.status < 500 and isinstance(body, dict)
            lenient.append({"case": name, "status": o.status, "ok": answered or refused})
            if not (answered or refused):
                problems.append(_problem(name, ctype, o))
        elif o.status == 200 and reference.matches(name, body):
            counts["good_right"] += 1
        else:
            problems.append(_problem(f"good: {name[:60]!r}", ctype, o))
    figures = {"requests": len(outcomes), **counts, "statuses": traffic.statuses(outcomes),
               "lenient_outcomes": lenient,
               "worker_pids_unchanged": pids_before == served_models.worker_pids(served, MODEL_NAME),
               "healthy_after": served.ping(), "problems": problems[:40], "problem_count": len(problems)}
    record("barrage", figures)
    assert figures["requests"] == len(plan) and counts["bad"] >= 200
    assert counts["5xx"] == 0 and counts["no_answer"] == 0, figures["statuses"]
    assert figures["worker_pids_unchanged"] and figures["healthy_after"]
    assert counts["good_right"] == counts["good"]
    assert problems == []
