"""docs/api.md's error tables and the handler's code agree: every error code in the tables is
one the handler sends, with the status the table gives, and every code it can send is there.
(tests/integration/test_api_docs.py sends each documented refusal to a real TorchServe.)"""
from __future__ import annotations

import re

from serving.properties import REPO_ROOT
from tests.helpers.api_docs import EXAMPLES, FAILURES, REFUSALS

HANDLER_SOURCES = [REPO_ROOT / "handler" / "handler.py", REPO_ROOT / "handler" / "request_parsing.py"]


def test_every_documented_refusal_has_an_example_here():
    assert set(EXAMPLES) == set(REFUSALS)


def test_every_code_the_handler_can_send_is_documented_with_its_status():
    sent = {}
    for source in HANDLER_SOURCES:
        for status, code in re.findall(r'RequestError\(\s*(\d+),\s*"(\w+)"', source.read_text()):
            sent[code] = int(status)
    assert sent == {**REFUSALS, **FAILURES}
