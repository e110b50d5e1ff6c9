"""docs/api.md's "Bad input" tables, and one request per refusal they document."""
from __future__ import annotations

import json

from serving.properties import REPO_ROOT

API_DOC = REPO_ROOT / "docs" / "api.md"
JSON, TEXT = "application/json", "text/plain"


def doc_tables() -> list[list[list[str]]]:
    """The tables of docs/api.md's "Bad input" section: rows of cells, header row first."""
    section = API_DOC.read_text().split("## Bad input", 1)[1].split("\n## ", 1)[0]
    tables, current = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|- "):
                current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def documented(*header: str) -> dict[str, int]:
    """error code -> status of the table with this header."""
    (table,) = [t for t in doc_tables() if t[0] == list(header)]
    return {row[0].strip("`"): int(row[1]) for row in table[1:]}


REFUSALS = documented("`error`", "Status", "When", "Example body")  # the handler's refusals
FAILURES = documented("`error`", "Status", "When")  # the server's own failures

# One request per documented refusal: (body, content type, extra headers).
EXAMPLES = {
    "empty_body": (b"", JSON, {}),
    "empty_text": (json.dumps({"texts": ["Oil rises", " "]}).encode(), JSON, {}),
    "invalid_utf8": (b"caf\xe9", TEXT, {}),
    "malformed_json": (b'{"text": ', JSON, {}),
    "invalid_json": (b'["Oil rises"]', JSON, {}),
    "missing_text": (b'{"title": "Oil rises"}', JSON, {}),
    "text_and_texts": (b'{"text": "a", "texts": ["b"]}', JSON, {}),
    "invalid_text": (b'{"text": 5}', JSON, {}),
    "invalid_texts": (b'{"texts": ["Oil rises", 7]}', JSON, {}),
    "empty_texts": (b'{"texts": []}', JSON, {}),
    "unsupported_body": (b"text=Oil+rises", "application/x-www-form-urlencoded", {}),
    "invalid_correlation_id": (b"Oil rises", TEXT, {"X-Correlation-Id": "a b"}),
    "text_too_long": (("x" * 1001).encode(), TEXT, {}),
    "too_many_texts": (json.dumps({"texts": ["Oil rises"] * 65}).encode(), JSON, {}),
}
