"""One self-contained HTML page explaining a file of headlines: `explain --file --html`.

Per headline: its label and probability, each word (after preprocessing) coloured by its
signed Integrated Gradients score (scaled per headline), and the n-grams that the filters for
and against the label picked. A class filter and a sort by confidence work in the page, also
from its address (`report.html#class=Sports&sort=asc`). Everything is inline: it works
offline. Built with the standard library only; every text from the data is escaped.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

from client.tables import Outcome, Record

# Not classes: what the filter calls rows without a label.
ABSTAINED = "(abstained)"
ERROR = "(error)"
FOR_RGB = (22, 130, 60)
AGAINST_RGB = (205, 40, 40)
# The strongest word of a headline gets this opacity; weaker ones in proportion.
MAX_ALPHA = 0.75
SORTS = {"input": "input order", "desc": "confidence, high to low", "asc": "confidence, low to high"}

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d2125; background: #f4f5f7; }
header.page { background: #fff; border-bottom: 1px solid #d8dce0; padding: 14px 24px;
              position: sticky; top: 0; z-index: 1; }
h1 { font-size: 19px; margin: 0 0 6px; }
.meta, .legend { color: #555; font-size: 13px; }
.controls { margin-top: 8px; display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
select { font: inherit; padding: 2px 4px; }
main { padding: 12px 24px 40px; max-width: 1100px; }
.item { background: #fff; border: 1px solid #d8dce0; border-radius: 6px; padding: 10px 14px;
        margin: 10px 0; }
.item[hidden] { display: none; }
.top { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.label { font-weight: 600; padding: 1px 8px; border-radius: 10px; background: #e3e8ee; }
.confidence { font-weight: 600; }
.row { color: #777; font-size: 12px; margin-left: auto; }
.headline { margin: 6px 0 4px; font-size: 16px; }
.tokens { margin: 4px 0 8px; line-height: 2; }
.tok { padding: 2px 5px; margin-right: 3px; border-radius: 3px; white-space: nowrap; }
.tok.for { border-bottom: 2px solid rgb(22,130,60); }
.tok.against { border-bottom: 2px dotted rgb(205,40,40); }
.ngrams { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 20px; font-size: 14px; }
.ngrams h3 { font-size: 13px; margin: 0; color: #444; }
.ngrams ul { margin: 2px 0; padding-left: 18px; }
.ngrams .for b { color: rgb(22,110,50); }
.ngrams .against b { color: rgb(180,30,30); }
.note { color: #555; font-style: italic; }
.error { color: rgb(180,30,30); }
.probs { color: #555; font-size: 13px; }
.swatch { padding: 0 6px; border-radius: 3px; }
"""

SCRIPT = """
(function () {
  var list = document.getElementById("items");
  var items = Array.prototype.slice.call(list.children);
  var byClass = document.getElementById("class");
  var sort = document.getElementById("sort");
  var shown = document.getElementById("shown");
  function confidence(item) {
    return item.dataset.confidence === "" ? null : Number(item.dataset.confidence);
  }
  function compare(a, b) {
    var ca = confidence(a), cb = confidence(b);
    if (sort.value !== "input" && ca !== cb) {
      if (ca === null) return 1;  /* no label: last either way */
      if (cb === null) return -1;
      return sort.value === "desc" ? cb - ca : ca - cb;
    }
    return Number(a.dataset.order) - Number(b.dataset.order);
  }
  function apply() {
    var count = 0;
    items.slice().sort(compare).forEach(function (item) {
      item.hidden = byClass.value !== "" && item.dataset.label !== byClass.value;
      if (!item.hidden) count += 1;
      list.appendChild(item);
    });
    shown.textContent = "showing " + count + " of " + items.length;
    var state = "class=" + encodeURIComponent(byClass.value) + "&sort=" + sort.value;
    try { history.replaceState(null, "", "#" + state); } catch (e) { /* some file: URLs */ }
  }
  var wanted = new URLSearchParams(location.hash.slice(1));
  if (wanted.has("class")) byClass.value = wanted.get("class");
  if (wanted.has("sort") && sort.querySelector('option[value="' + wanted.get("sort") + '"]')) {
    sort.value = wanted.get("sort");
  }
  byClass.addEventListener("change", apply);
  sort.addEventListener("change", apply);
  apply();
})();
"""


def write_report(rows: list[tuple[Record, Outcome]], path: str | Path, source: str = "") -> None:
    """Write the page of `rows` (batch.explain_file's) to `path`."""
    Path(path).write_text(render_report(rows, source), encoding="utf-8")


def render_report(rows: list[tuple[Record, Outcome]], source: str = "") -> str:
    """The page, as text."""
    groups = [_group(outcome) for _, outcome in rows]
    counts = {g: groups.count(g) for g in dict.fromkeys(groups)}
    classes = sorted(g for g in counts if g not in (ABSTAINED, ERROR)) + [
        g for g in (ABSTAINED, ERROR) if g in counts]
    options = [f'<option value="">all ({len(rows)})</option>'] + [
        f'<option value="{escape(c)}">{escape(c)} ({counts[c]})</option>' for c in classes]
    sorts = [f'<option value="{k}">{v}</option>' for k, v in SORTS.items()]
    items = "\n".join(_item(order, record, outcome, group)
                      for order, ((record, outcome), group) in enumerate(zip(rows, groups, strict=True)))
    title = f"Explanations of {source}" if source else "Explanations"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header class="page">
<h1>{escape(title)}</h1>
<div class="legend">Each word after preprocessing is coloured by its Integrated Gradients score
towards the label: <span class="swatch" style="{_colour(1.0, 1.0)}">for</span>
<span class="swatch" style="{_colour(-1.0, 1.0)}">against</span>, stronger for larger scores
(scaled per headline; hover a word for its score). The n-grams are the spans the filters'
max-pool picked that argue most for and against the label; an n-gram's score is the sum of its
words' scores, on the same colour scale.</div>
<div class="controls">
<label>Class <select id="class">{"".join(options)}</select></label>
<label>Sort <select id="sort">{"".join(sorts)}</select></label>
<span id="shown" class="meta">showing {len(rows)} of {len(rows)}</span>
</div>
</header>
<main id="items">
{items}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _group(outcome: Outcome) -> str:
    """What the class filter files a row under: its label, ABSTAINED or ERROR."""
    if outcome.error is not None or outcome.answer is None:
        return ERROR
    return outcome.answer.get("label") or ABSTAINED


def _item(order: int, record: Record, outcome: Outcome, group: str) -> str:
    answer = outcome.answer or {}
    label = answer.get("label")
    probabilities = answer.get("probabilities") or {}
    confidence = probabilities.get(label) if label else None
    headline = record.text if record.text is not None else json.dumps(record.fields, ensure_ascii=False)
    top = (f'<span class="label">{escape(label)}</span>'
           f'<span class="confidence">{confidence:.1%}</span>' if label else
           f'<span class="label">{escape(group)}</span>')
    body = [f'<div class="top">{top}<span class="row">line {record.line}</span></div>',
            f'<p class="headline">{escape(_printable(headline))}</p>']
    if outcome.error is not None:
        body.append(f'<p class="error">{escape(_printable(outcome.error))}</p>')
    elif not label:
        body.append(f'<p class="note">no label: {escape(str(answer.get("abstained")))} (no word the '
                    f'model knows after preprocessing)</p>')
    else:
        scores = answer.get("token_scores") or []
        supporting, opposing = _listed(answer, "ngrams"), _listed(answer, "opposing_ngrams")
        # One scale for words and n-grams, so equal colours mean equal scores.
        largest = max([abs(s) for s in scores] + [abs(e["score"]) for e in supporting + opposing],
                      default=0.0) or 1.0
        body.append(_tokens(answer.get("tokens") or [], scores, largest))
        body.append(_ngrams(label, supporting, opposing, largest))
        others = ", ".join(f"{escape(c)} {p:.1%}" for c, p in probabilities.items() if c != label)
        body.append(f'<p class="probs">other classes: {others}</p>')
    data = (f'data-order="{order}" data-label="{escape(group)}" '
            f'data-confidence="{"" if confidence is None else confidence}"')
    return f'<article class="item" {data}>\n' + "\n".join(body) + "\n</article>"


def _tokens(tokens: list[str], scores: list[float], largest: float) -> str:
    """The words, each on a background for its signed score, scaled by `largest`."""
    spans = []
    for token, score in zip(tokens, scores, strict=True):
        side = "for" if score >= 0 else "against"
        spans.append(f'<span class="tok {side}" data-score="{score}" style="{_colour(score, largest)}" '
                     f'title="{score:+.3f}">{escape(token)}</span>')
    return f'<p class="tokens">{"".join(spans)}</p>'


def _colour(score: float, largest: float) -> str:
    red, green, blue = FOR_RGB if score >= 0 else AGAINST_RGB
    return f"background: rgba({red},{green},{blue},{MAX_ALPHA * min(1.0, abs(score) / largest):.3f})"


def _listed(answer: dict, key: str) -> list[dict]:
    """The top n-gram of each length on one side of an explanation, largest |score| first."""
    return sorted((top for top in (answer.get(key) or {}).values() if top), key=lambda e: -abs(e["score"]))


def _ngrams(label: str, supporting: list[dict], opposing: list[dict], largest: float) -> str:
    """Two lists, for the label and against it: each n-gram once, with its signed score, on
    the background its words would have."""
    def items(entries: list[dict]) -> str:
        return "".join(f'<li><b style="{_colour(e["score"], largest)}">{escape(e["ngram"])}</b> '
                       f'{e["score"]:+.3f} ({e["end"] - e["start"]}-gram, {_filters(e)})</li>'
                       for e in entries) or "<li>none</li>"
    return (f'<div class="ngrams"><div class="for"><h3>for {escape(label)}</h3>'
            f'<ul>{items(supporting)}</ul></div>'
            f'<div class="against"><h3>against</h3><ul>{items(opposing)}</ul></div></div>')


def _filters(entry: dict) -> str:
    count = entry.get("filters", 0)
    return f"picked by {count} filter{'' if count == 1 else 's'}"


def _printable(text: str) -> str:
    """`text` with bytes that were not UTF-8 (read as lone surrogates) and other lone
    surrogates (from a JSON escape) shown as U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
