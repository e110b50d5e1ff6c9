"""`news-cnn explain --file --html`: one self-contained page, read back by an HTML parser (every
headline with its label, its words coloured by the sign and size of their scores, its n-grams
for and against, escaped, nothing fetched). tests/integration/test_report_browser.py renders it
in a real headless Chromium."""
from __future__ import annotations

import re

import pytest

from client.batch import Outcome, Record
from client.report import ABSTAINED, ERROR, MAX_ALPHA, render_report
from tests.helpers.report_page import HEADLINES, HOSTILE, Page, explain_headlines


@pytest.fixture(scope="module")
def explained(tiny_artifacts, tmp_path_factory) -> list:
    return explain_headlines(tiny_artifacts, tmp_path_factory.mktemp("report"))


def test_every_headline_is_shown_with_its_label_words_and_ngrams(explained):
    page = Page(render_report(explained, "in.csv"))
    assert len(page.articles) == len(HEADLINES)
    for article, (record, outcome) in zip(page.articles, explained, strict=True):
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
        supporting = [e for e in answer["ngrams"].values() if e]
        opposing = [e for e in answer["opposing_ngrams"].values() if e]
        # Words and n-grams share one colour scale.
        largest = max([abs(s) for s in scores] + [abs(e["score"]) for e in supporting + opposing])
        for (_, attrs), score in zip(article["tokens"], scores, strict=True):
            assert ("for" if score >= 0 else "against") in attrs["class"].split()
            alpha = float(re.search(r"rgba\(\d+,\d+,\d+,([\d.]+)\)", attrs["style"]).group(1))
            assert alpha == pytest.approx(MAX_ALPHA * abs(score) / largest, abs=1e-3)
        assert sorted(article["for"]) == sorted(e["ngram"] for e in supporting)
        assert sorted(article["against"]) == sorted(e["ngram"] for e in opposing)
        assert not set(article["for"]) & set(article["against"])


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


@pytest.mark.parametrize("title", ["caf\udce9 prices", "Tennis \ud800 cup"])
def test_text_that_is_not_utf8_is_shown_as_replacement_characters(title):
    # An undecodable byte of a CSV (read as U+DC00 + byte) and a lone surrogate of a JSON line.
    record = Record(line=2, fields={"title": title}, text=None, error="invalid_text: not sent")
    html = render_report([(record, Outcome(error=record.error))])
    html.encode("utf-8")  # the page can be written as UTF-8
    assert "\ufffd" in Page(html).articles[0]["text"]
