"""Headlines to send: from a CSV with a `title` column when given, else a built-in sample."""
from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path

# Used when no data file is at hand (tests, fresh clones without ../shared): varied lengths,
# punctuation and casing, one topic mix like AG News.
SAMPLE = [
    "The final tennis tournament starts next week.",
    "Stocks fall as oil prices climb to a record high",
    "NASA launches new probe to study the outer planets",
    "Rebels attack convoy near the capital, officials say",
    "Yankees beat Red Sox 5-3 in extra innings",
    "Intel unveils faster chips for laptops",
    "Central bank raises interest rates by a quarter point",
    "UN Security Council meets on the crisis in Sudan",
    "Google shares jump after strong quarterly earnings (Reuters)",
    "Olympic champion retires after 12 years on the track",
    "Scientists discover water ice on a distant moon",
    "Oil giant agrees to $2 billion merger with rival",
    "Prime minister calls snap election amid scandal",
    "Microsoft patches critical Windows security flaw",
    "Ronaldo scores twice as Real Madrid win the derby",
    "Airline cuts 3,000 jobs as fuel costs soar",
]


def load(path: str | Path | None, limit: int = 2000) -> list[str]:
    """Up to `limit` non-empty titles from a CSV with a `title` column, or the sample."""
    if not path or not Path(path).is_file():
        return list(SAMPLE)
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        stripped = ((row.get("title") or "").strip() for row in csv.DictReader(f))
        titles = list(islice((title for title in stripped if title), limit))
    return titles or list(SAMPLE)


def json_bodies(titles: list[str]) -> list[str]:
    """One `{"text": ...}` body per title, one line each (json.dumps escapes newlines)."""
    return [json.dumps({"text": t}) for t in titles]
