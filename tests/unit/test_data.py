import hashlib
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace

import pytest

from serving import rest
from tests.helpers.fake_http import serve
from tests.helpers.tiny_headlines import write_csv
from training import data
from training.errors import DataError


def test_reads_seed_schema(tmp_path):
    frame = data.read_headlines(write_csv(tmp_path / "news.csv"))
    assert list(frame.columns[:2]) == ["title", "category"] and len(frame) == 60
    assert frame["row"].iloc[0] == 2  # line numbers, header is line 1


def test_reads_canonical_ag_news(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('"3","Wall St. Bears","Short-sellers..."\n"2","Cup final","desc"\n'
                    '"1","Talks resume","x"\n"4","New chip","y"\n')
    frame = data.read_headlines(path)
    assert frame["category"].tolist() == ["Business", "Sports", "World", "Sci/Tech"]
    assert frame["title"].iloc[0] == "Wall St. Bears"


def test_canonical_bad_class_index_names_row(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('"3","a","b"\n"7","c","d"\n')
    with pytest.raises(DataError, match=r"train.csv: row 2 .*'7'"):
        data.read_headlines(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: no such file.*DATA="):
        data.read_headlines(tmp_path / "nope.csv")


def test_missing_columns(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("headline,label\nhello,World\n")
    with pytest.raises(DataError, match=r"news.csv: missing column\(s\) title, category"):
        data.read_headlines(path)


def test_empty_title_names_row(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("title,category\nFine,World\n   ,Sports\n")
    with pytest.raises(DataError, match=r"news.csv: row 3 has an empty title"):
        data.read_headlines(path)


def test_non_utf8_names_row(tmp_path):
    path = tmp_path / "news.csv"
    path.write_bytes(b"title,category\nFine,World\nCaf\xe9 opens,Business\n")
    with pytest.raises(DataError, match=r"news.csv: row 3 .*not UTF-8"):
        data.read_headlines(path)


def test_too_few_rows_to_stratify_names_class_and_row(tmp_path):
    path = tmp_path / "news.csv"
    lines = ["title,category"] + [f"headline {i},World" for i in range(20)] + ["lonely,Sports"] * 3
    path.write_text("\n".join(lines) + "\n")
    frame = data.read_headlines(path)
    with pytest.raises(DataError, match=r"class 'Sports' has only 3 row\(s\) \(first at row 22\)"):
        data.check_stratifiable(frame, str(path))


def test_split_is_stratified_70_15_15_and_reproducible(tmp_path):
    frame = data.read_headlines(write_csv(tmp_path / "news.csv", rows_per_class=20))
    a, b = data.split(frame, seed=1), data.split(frame, seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (56, 12, 12)
    assert a.test["title"].tolist() == b.test["title"].tolist()
    assert set(a.test["category"].value_counts()) == {3}
    rows = [set(part["row"]) for part in (a.train, a.val, a.test)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])


def test_sample_keeps_every_class(tmp_path):
    frame = data.read_headlines(write_csv(tmp_path / "news.csv", rows_per_class=20))
    small = data.sample(frame, 40, seed=0)
    assert len(small) == 40 and small["category"].value_counts().min() == 10


@contextmanager
def fake_download(body: bytes):
    """rest.download's answer, holding `body`."""
    yield SimpleNamespace(headers={}, chunks=lambda size: iter([body]))


def test_download_unreachable_says_how_to_pass_data(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise rest.NoAnswer(args[0], ConnectionError("no route to host"))

    monkeypatch.setattr(rest, "download", offline)
    with pytest.raises(DataError, match=r"network looks unreachable.*make train DATA="):
        data.load_headlines(None, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # no partial file left


def test_download_bad_checksum_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(rest, "download", lambda *a, **k: fake_download(b'"1","t","d"\n'))
    with pytest.raises(DataError, match=r"has MD5 .*expected b1a00f826fdfbd249f79597b59e1dc12"):
        data.download_ag_news(tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


def published(body: bytes) -> data.PublishedFile:
    return data.PublishedFile(len(body), hashlib.md5(body).hexdigest(), hashlib.sha256(body).hexdigest())


def test_download_verified_then_cached(tmp_path, monkeypatch):
    bodies = {"train.csv": b'"1","Talks","d"\n' * 12 + b'"2","Cup","d"\n' * 12,
              "test.csv": b'"1","Peace","d"\n"2","Goal","d"\n'}
    monkeypatch.setattr(data, "AG_NEWS_FILES", {n: published(b) for n, b in bodies.items()})
    calls = []

    def fake_get(url, timeout):
        calls.append(url)
        return fake_download(bodies[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(rest, "download", fake_get)
    headlines = data.load_headlines(None, tmp_path / "cache")
    assert len(headlines.frame) == 26 and len(calls) == 2
    data.load_headlines(None, tmp_path / "cache")
    assert len(calls) == 2  # verified cache, no second download


class StreamingHandler(BaseHTTPRequestHandler):
    """Serves `server.body` at any path in small writes, with or without a Content-Length;
    counts the bytes it managed to send before the client hung up."""

    def do_GET(self):
        body, self.server.sent = self.server.body, 0
        self.send_response(200)
        if self.server.announce:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for start in range(0, len(body), 1 << 16):
                self.wfile.write(body[start:start + (1 << 16)])
                self.server.sent = start + (1 << 16)
        except OSError:  # the client stopped reading
            pass
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_download_with_a_matching_md5_but_another_sha256_is_rejected(tmp_path, monkeypatch):
    # MD5 collisions are cheap to make: the SHA-256 must match as well.
    body = b'"1","Talks","d"\n' * 10
    expected = data.PublishedFile(len(body), hashlib.md5(body).hexdigest(), "0" * 64)
    monkeypatch.setattr(data, "AG_NEWS_FILES", {"train.csv": expected})
    with serve(StreamingHandler, body=body, announce=True) as (url, _):
        monkeypatch.setattr(data, "AG_NEWS_URL", url + "/")
        with pytest.raises(DataError, match="has SHA256 .* expected 0000"):
            data.download_ag_news(tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "no-content-length"])
def test_download_stops_past_the_published_size_and_keeps_nothing(tmp_path, monkeypatch, announce):
    # A server that sends far more than the published size (here 64 MB against 1 kB) is cut
    # off after at most one more chunk, whether or not it announces its length up front.
    body = b"x" * (64 << 20)
    monkeypatch.setattr(data, "AG_NEWS_FILES", {"train.csv": published(body[:1000])})
    with serve(StreamingHandler, body=body, announce=announce) as (url, server):
        monkeypatch.setattr(data, "AG_NEWS_URL", url + "/")
        with pytest.raises(DataError, match="more than the published 1000"):
            data.download_ag_news(tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # no partial file
    # Stopped early: the server could not hand over more than the cap, a chunk and what the
    # sockets buffer (a few MB), far from the 64 MB it had to send.
    assert server.sent < 16 << 20


def test_blocked_split_keeps_runs_of_rows_together(tmp_path):
    frame = data.read_headlines(write_csv(tmp_path / "news.csv", rows_per_class=100))
    a, b = data.split(frame, seed=1, block=10), data.split(frame, seed=1, block=10)
    assert (len(a.train), len(a.val), len(a.test)) == (280, 60, 60)
    assert a.val["title"].tolist() == b.val["title"].tolist()
    position = {row: i for i, row in enumerate(frame["row"])}
    parts = [[position[row] for row in part["row"]] for part in (a.train, a.val, a.test)]
    for rows in parts:
        assert rows == sorted(rows)  # each part keeps the file's order
    # Every run of 10 consecutive rows lies in exactly one part.
    runs = [{r // 10 for r in rows} for rows in parts]
    assert sum(len(r) for r in runs) == 40 and set().union(*runs) == set(range(40))
    for part in (a.train, a.val, a.test):
        assert set(part["category"]) == set(frame["category"])
