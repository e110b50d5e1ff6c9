"""The explanation page of `news-cnn explain --file --html` for the tiny artifacts, and the
parts of it the tests read back."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from client import batch
from client.commands import ArchiveInProcess
from serving.offline import OfflineModel

HOSTILE = '<script>alert("x")</script> tennis & <b>cup</b>'
HEADLINES = ["Tennis cup final starts", "Oil prices market stocks", "Election president vote talks",
             "Rocket space software", "zzz qqq unknown", "", HOSTILE, "League cup tennis week",
             "Bank stocks war talks", "Space rocket election"]


def explain_headlines(artifacts: Path, directory: Path) -> list:
    """HEADLINES written as a CSV in `directory` and explained in process by `artifacts`: the
    (record, outcome) pairs the page is rendered from."""
    source = directory / "in.csv"
    source.write_text("title,id\n" + "".join(f'"{h.replace(chr(34), 2 * chr(34))}",{i}\n'
                                             for i, h in enumerate(HEADLINES)))
    with OfflineModel(artifacts) as model:
        return batch.explain_file(ArchiveInProcess(model), str(source), batch.BatchOptions())


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
