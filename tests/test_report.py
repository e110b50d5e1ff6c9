"""`news-cnn explain --file --html`: one self-contained page, read back by an HTML parser (every
headline with its label, its words coloured by the sign and size of their scores, its n-grams
for and against, escaped, nothing fetched) and rendered by a real headless Chromium (the
class filter and the sort run, and the colours are on screen)."""
from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from client import batch
from client.console import InProcess
from client.report import ABSTAINED, ERROR, MAX_ALPHA, render_report, write_report
from serving.offline import OfflineModel

HOSTILE = '<script>alert("x")</script> tennis & <b>cup</b>'
HEADLINES = ["Tennis cup final starts", "Oil prices market stocks", "Election president vote talks",
             "Rocket space software", "zzz qqq unknown", "", HOSTILE, "League cup tennis week",
             "Bank stocks war talks", "Space rocket election"]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# The flags Chromium needs here: no sandbox as root, no GPU, nothing fetched or synced.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def explained(tiny_artifacts, tmp_path_factory) -> list:
    source = tmp_path_factory.mktemp("report") / "in.csv"
    source.write_text("title,id\n" + "".join(f'"{h.replace(chr(34), 2 * chr(34))}",{i}\n'
                                             for i, h in enumerate(HEADLINES)))
    with OfflineModel(tiny_artifacts) as model:
        return batch.explain_file(InProcess(model), str(source), batch.BatchOptions())


class Page(HTMLParser):
    """The parts of the page the tests read: articles with their spans and lists."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.articles: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self.options: dict[str, list[tuple[str, str]]] = {}
        self._stack: list[tuple[str, dict]] = []
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "article":
            self.articles.append({**attrs, "tokens": [], "for": [], "against": [], "text": ""})
        if tag == "select":
            self._select = attrs["id"]
            self.options[self._select] = []
        if tag == "option":
            self.options[self._select].append((attrs["value"], ""))
        if tag not in ("meta", "br"):
            self._stack.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        while self._stack and self._stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        classes = " ".join(a.get("class", "") for _, a in self._stack)
        if self._stack and self._stack[-1][0] == "option":
            value, text = self.options[self._select][-1]
            self.options[self._select][-1] = (value, text + data)
        if not self.articles or "item" not in classes:
            return
        article = self.articles[-1]
        article["text"] += data
        tag, attrs = self._stack[-1]
        if tag == "span" and "tok" in attrs.get("class", ""):
            article["tokens"].append((data, attrs))
        if tag == "b":
            article["for" if " for" in f" {classes}" else "against"].append(data)


def test_every_headline_is_shown_with_its_label_words_and_ngrams(explained):
    page = Page(render_report(explained, "in.csv"))
    assert len(page.articles) == len(HEADLINES)
    for article, (record, outcome) in zip(page.articles, explained):
        answer = outcome.answer or {}
        assert record.text in article["text"]
        if outcome.error is not None:
            assert article["data-label"] == ERROR and outcome.error in article["text"]
            continue
        if answer["label"] is None:
            assert article["data-label"] == ABSTAINED and "no_known_words" in article["text"]
            continue
        assert article["data-label"] == answer["label"]
        assert float(article["data-confidence"]) == answer["probabilities"][answer["label"]]
        tokens, scores = answer["tokens"], answer["token_scores"]
        assert [t for t, _ in article["tokens"]] == tokens
        largest = max(abs(s) for s in scores)
        for (_, attrs), score in zip(article["tokens"], scores):
            assert ("for" if score >= 0 else "against") in attrs["class"].split()
            alpha = float(re.search(r"rgba\(\d+,\d+,\d+,([\d.]+)\)", attrs["style"]).group(1))
            assert alpha == pytest.approx(MAX_ALPHA * abs(score) / largest, abs=1e-3)
        supporting = {e["ngram"] for e in answer["ngrams"].values() if e.get("ngram")}
        opposing = {e["ngram"] for e in answer["opposing_ngrams"].values() if e.get("ngram")}
        assert set(article["for"]) == supporting and set(article["against"]) == opposing


def test_the_class_filter_offers_each_group_with_its_count(explained):
    page = Page(render_report(explained))
    groups = [a["data-label"] for a in page.articles]
    offered = page.options["class"]
    assert offered[0] == ("", f"all ({len(HEADLINES)})")
    assert sorted(v for v, _ in offered[1:]) == sorted(set(groups))
    assert all(text == f"{value} ({groups.count(value)})" for value, text in offered[1:])
    assert ERROR in groups and ABSTAINED in groups
    assert [v for v, _ in page.options["sort"]] == ["input", "desc", "asc"]


def test_the_page_is_self_contained_and_escapes_what_it_shows(explained):
    html = render_report(explained)
    page = Page(html)
    assert [t for t, _ in page.tags].count("script") == 1  # the page's own, not the headline's
    assert any(HOSTILE in a["text"] for a in page.articles)
    for tag, attrs in page.tags:
        assert not {"src", "href"} & set(attrs), (tag, attrs)
    assert not re.search(r"https?://|url\(|@import|<link", html)


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    result = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.integration
def test_chromium_runs_the_filter_and_sort_and_draws_the_colours(explained, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    report = tmp_path / "report.html"
    write_report(explained, report, "in.csv")
    labels = [o.answer["label"] for _, o in explained if o.answer and o.answer.get("label")]
    chosen = max(set(labels), key=labels.count)
    dom = chromium(tmp_path, "--dump-dom", f"{report.as_uri()}#class={chosen}&sort=asc").stdout
    page = Page(dom)
    visible = [a for a in page.articles if "hidden" not in a]
    assert {a["data-label"] for a in visible} == {chosen} and len(visible) == labels.count(chosen)
    confidences = [float(a["data-confidence"]) for a in visible]
    assert confidences == sorted(confidences)
    assert f"showing {len(visible)} of {len(HEADLINES)}" in dom

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    pixels = (imread(shot)[..., :3] * 255).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    greenish = (green > red + 30) & (green > blue + 15)
    reddish = (red > green + 40) & (red > blue + 40)
    # Both colours cover real areas (word backgrounds, legend), not a stray pixel or two.
    assert greenish.sum() > 300 and reddish.sum() > 300, (greenish.sum(), reddish.sum())
    assert np.mean(pixels) > 200  # a light page with dark text, not a blank or error screen
