"""The malformed requests of the bad-input barrage, each with what a right answer looks like.

Every kind of input the handler refuses (empty or whitespace, invalid UTF-8, malformed
JSON, wrong types, over-long), plus random bytes, bodies over max_request_size, deeply nested
JSON, wrong content types and unicode edge cases. Each is (name, body, content type); every
one must get a 4xx with a JSON body.
"""
from __future__ import annotations

import json
import random

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def bad_requests(max_request_size: int = 1048576, max_chars: int = 1000, max_texts: int = 64,
                 seed: int = 0, random_count: int = 150) -> list[tuple[str, bytes, str | None]]:
    """About 55 hand-made malformed requests plus `random_count` random byte strings."""
    rng = random.Random(seed)
    long_text = "word " * (max_chars // 5 + 10)
    cases: list[tuple[str, bytes, str | None]] = [
        # empty and whitespace
        ("empty text/plain", b"", TEXT),
        ("empty JSON body", b"", JSON),
        ("empty, no content type", b"", None),
        ("whitespace text/plain", b"  \t\n  ", TEXT),
        ("whitespace JSON text", json.dumps({"text": " \n\t "}).encode(), JSON),
        ("empty JSON text", json.dumps({"text": ""}).encode(), JSON),
        ("whitespace in texts", json.dumps({"texts": ["ok headline", "   "]}).encode(), JSON),
        ("unicode spaces only", json.dumps({"text": "\u00a0\u2003\u3000"}).encode(), JSON),
        # invalid UTF-8
        ("invalid UTF-8 text/plain", b"\xff\xfe\xfd broken", TEXT),
        ("invalid UTF-8 JSON", b'{"text": "caf\xe9"}', JSON),
        ("lone continuation bytes", b"\x80\x80\x80", TEXT),
        ("overlong encoding", b"\xc0\xaf headline", TEXT),
        ("truncated multibyte", b"Stocks \xe2\x82", TEXT),
        ("UTF-16 body", "Stocks rally".encode("utf-16"), TEXT),
        # malformed JSON
        ("truncated JSON", b'{"text": "Stocks rally"', JSON),
        ("single quotes JSON", b"{'text': 'Stocks rally'}", JSON),
        ("trailing comma JSON", b'{"text": "Stocks rally",}', JSON),
        ("JSON NaN garbage", b'{"text": NaN', JSON),
        ("not JSON at all", b"this is not json", JSON),
        # JSON without text/texts, wrong types
        ("JSON without text", json.dumps({"title": "Stocks rally"}).encode(), JSON),
        ("empty JSON object", b"{}", JSON),
        ("both text and texts", json.dumps({"text": "a b", "texts": ["c d"]}).encode(), JSON),
        ("text is a number", json.dumps({"text": 42}).encode(), JSON),
        ("text is null", json.dumps({"text": None}).encode(), JSON),
        ("text is a list", json.dumps({"text": ["Stocks rally"]}).encode(), JSON),
        ("text is an object", json.dumps({"text": {"a": 1}}).encode(), JSON),
        ("texts is a string", json.dumps({"texts": "Stocks rally"}).encode(), JSON),
        ("texts has numbers", json.dumps({"texts": [1, 2]}).encode(), JSON),
        ("texts has null", json.dumps({"texts": ["ok", None]}).encode(), JSON),
        ("texts nested lists", json.dumps({"texts": [["a"]]}).encode(), JSON),
        ("texts is empty", json.dumps({"texts": []}).encode(), JSON),
        ("texts is an object", json.dumps({"texts": {"a": "b"}}).encode(), JSON),
        ("JSON array", json.dumps(["Stocks rally"]).encode(), JSON),
        ("JSON string", json.dumps("Stocks rally").encode(), JSON),
        ("JSON number", b"42", JSON),
        ("JSON null", b"null", JSON),
        ("JSON true", b"true", JSON),
        # over-long
        ("over-long headline text/plain", long_text.encode(), TEXT),
        ("over-long headline JSON", json.dumps({"text": long_text}).encode(), JSON),
        ("over-long headline in texts", json.dumps({"texts": ["ok", long_text]}).encode(), JSON),
        ("too many texts", json.dumps({"texts": ["Stocks rally"] * (max_texts + 1)}).encode(), JSON),
        # bodies over max_request_size
        ("huge text/plain body", b"a" * (max_request_size + 1024), TEXT),
        ("huge JSON body", json.dumps({"text": "a " * (max_request_size // 2 + 1024)}).encode(), JSON),
        ("huge texts body", json.dumps({"texts": ["Stocks rally"] * (max_request_size // 10)}).encode(),
         JSON),
        # deeply nested JSON
        ("deep arrays", b"[" * 50_000 + b"]" * 50_000, JSON),
        ("deep objects", b'{"a":' * 20_000 + b"1" + b"}" * 20_000, JSON),
        ("deep nesting in text", b'{"text": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", JSON),
        ("deep nesting, unlabelled", b'{"text": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", None),
        # wrong content types
        ("form-encoded", b"text=Stocks+rally", "application/x-www-form-urlencoded"),
        ("binary octet-stream", b"\xff\x00\x01\x02", "application/octet-stream"),
        ("image content type", b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        ("xml", b"<text>Stocks rally</text>" + b"\xff", "application/xml"),
        # unicode edge cases that are still errors
        ("surrogates encoded as UTF-8 bytes", b"Stocks \xed\xa0\x80 rally", TEXT),
        ("BOM then broken JSON", b'\xef\xbb\xbf{"text": ', JSON),
    ]
    for i in range(random_count):
        size = rng.choice([1, 7, 64, 512, 4096])
        junk = bytes(rng.getrandbits(8) for _ in range(size))
        # Random bytes are almost never valid UTF-8; make sure with an invalid lead byte.
        junk = b"\xff" + junk
        cases.append((f"random bytes {i} ({size + 1} B)", junk,
                      rng.choice([TEXT, JSON, None, "application/octet-stream"])))
    return cases


def lenient_requests() -> list[tuple[str, bytes, str | None]]:
    """Requests the handler may read either way: refused with a 4xx JSON answer, or read as a
    plain-text headline and answered (its documented leniency); never a 5xx."""
    return [
        # No content type: the handler tries JSON for bodies starting with "{", else text.
        ("unlabelled broken JSON", b'{"text": ', None),
        # The frontend cannot split a multipart body without a boundary and passes it whole.
        ("multipart without boundary", b"--x\r\n\r\nStocks\r\n--x--", "multipart/form-data"),
        ("octet-stream text", b"Stocks rally", "application/octet-stream"),
    ]


def edge_good_requests(max_chars: int = 1000) -> list[tuple[str, str]]:
    """Odd but valid headlines (name, text): each must get a prediction, not an error."""
    return [
        ("emoji", "Stocks rally \U0001F680\U0001F4C8 as markets cheer"),
        ("CJK", "東京株式市場 stocks rally in Tokyo"),
        ("RTL", "مرحبا markets open higher"),
        ("combining marks", "Cafe\u0301 chain opens 100 stores"),
        ("zero-width joiner", "Tech\u200dgiant unveils phone"),
        ("all stopwords", "the of and a to in"),
        ("unknown words", "zxqv blorft wumpaloo"),
        ("digits only", "2004 2005 2006"),
        ("punctuation only", "!!! ??? ..."),
        ("control characters", "Stocks\x00\x01 rally"),
        ("only zero-width spaces (format characters, not whitespace)", "\u200b\u200b"),
        ("lone surrogate (JSON escape)", "Stocks \ud800 rally"),
        ("exactly max length", "a" * max_chars),
    ]
