"""A picture of one explanation: the n-grams listed for and against the predicted class, each
drawn once over the words it covers, above a bar chart of each word's Integrated Gradients score.

Spans and words share one scale and one code: green argues for the predicted class, red
against it, the stronger the darker, and each span is labelled with its signed score (the
sum of its words' scores). A headline the model abstained on gets a picture that says so.
"""
from __future__ import annotations

import math
from pathlib import Path

# The object-oriented API with the Agg canvas: no pyplot global state, no display needed.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

REQUIRED_KEYS = ("tokens", "token_scores", "ngrams", "opposing_ngrams")
FOR_COLOR = "tab:green"
AGAINST_COLOR = "tab:red"
# The faintest a span is drawn, so that a small score stays visible.
MIN_ALPHA = 0.2


def plot_explanation(explanation: dict, path: str | Path) -> None:
    """Write a PNG of one headline's explanation (a dict from /explanations) to `path`."""
    explanation_figure(explanation).savefig(path, format="png", dpi=100)


def explanation_figure(explanation: dict) -> Figure:
    """The figure of one explanation: on top, a row per listed n-gram (`listed_spans`), a box
    over the words it covers; below, a bar per word."""
    if explanation.get("abstained"):
        return _abstained_figure(explanation)
    missing = [k for k in REQUIRED_KEYS if k not in explanation]
    if missing:
        raise ValueError(f"not an explanation (missing {', '.join(missing)}): "
                         "pass one item of an /explanations response")
    tokens = explanation["tokens"]
    spans = listed_spans(explanation)
    figure = Figure(figsize=(max(7.0, 0.9 * len(tokens) + 2.0), 4.5 + 0.35 * len(spans)),
                    layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_title(explanation))
    if not tokens:
        figure.text(0.5, 0.5, "no words left after preprocessing", ha="center", va="center")
        return figure
    scale = max([abs(s) for s in explanation["token_scores"]] + [abs(s["score"]) for s in spans] + [1e-9])
    span_axes, bar_axes = figure.subplots(2, 1, height_ratios=[max(1, len(spans)), 3], sharex=True)
    _spans(span_axes, spans, scale)
    _bars(bar_axes, explanation["token_scores"], tokens, explanation.get("delta"), scale)
    return figure


def listed_spans(explanation: dict) -> list[dict]:
    """The top n-gram of each length and side, strongest first (a span is on one side only)."""
    tops = [top for key in ("ngrams", "opposing_ngrams")
            for top in (explanation.get(key) or {}).values() if top]
    return sorted(tops, key=lambda s: (-s["score"], s["start"], s["end"]))


def _abstained_figure(explanation: dict) -> Figure:
    figure = Figure(figsize=(7.0, 2.5), layout="constrained")
    FigureCanvasAgg(figure)
    words = " ".join(explanation.get("tokens") or []) or "(none)"
    figure.suptitle(f"no prediction: abstained ({explanation['abstained']})")
    figure.text(0.5, 0.5, f"no word the model knows after preprocessing\nwords left: {words}",
                ha="center", va="center")
    return figure


def _title(explanation: dict) -> str:
    label = explanation.get("label") or explanation.get("explained_class") or "?"
    lines = [f"predicted {label}"]
    for name, key in (("for", "ngrams"), ("against", "opposing_ngrams")):
        tops = [top for top in (explanation.get(key) or {}).values() if top]
        picked = ", ".join(f"{top['ngram']} ({top['score']:+.2f})"
                           for top in sorted(tops, key=lambda t: -abs(t["score"])))
        if picked:
            lines.append(f"n-grams {name}  {picked}")
    return "\n".join(lines)


def shade(score: float, scale: float) -> tuple[float, float, float, float]:
    """The colour of a score: green for, red against, more opaque the larger |score| / scale."""
    alpha = MIN_ALPHA + (1 - MIN_ALPHA) * min(1.0, abs(score) / scale)
    return to_rgba(FOR_COLOR if score >= 0 else AGAINST_COLOR, alpha)


def _spans(axes, spans: list[dict], scale: float) -> None:
    for row, span in enumerate(spans):
        axes.add_patch(Rectangle((span["start"] - 0.45, row - 0.4), span["end"] - span["start"] - 0.1, 0.8,
                                 facecolor=shade(span["score"], scale), edgecolor="none"))
        axes.text((span["start"] + span["end"] - 1) / 2, row, f"{span['ngram']}  {span['score']:+.2f}",
                  ha="center", va="center", fontsize=8)
    axes.set_ylim(max(1, len(spans)) - 0.5, -0.5)
    axes.set_yticks(range(len(spans)), [f"{s['end'] - s['start']}-gram" for s in spans])
    axes.tick_params(axis="x", labelbottom=False)
    axes.set_title("n-grams the max-pool picked, for (green) and against (red) the predicted class; "
                   "score = the sum of their word scores" if spans else "no n-gram for or against",
                   fontsize=8)


def _bars(axes, scores: list[float], tokens: list[str], delta: float | None, scale: float) -> None:
    axes.bar(range(len(scores)), scores, color=[shade(s, scale) for s in scores])
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xlim(-0.5, len(tokens) - 0.5)
    axes.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right")
    axes.set_ylabel("IG score")
    axes.legend(handles=[Patch(color=FOR_COLOR, label="for the predicted class"),
                         Patch(color=AGAINST_COLOR, label="against it")],
                loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    note = "" if delta is None or math.isnan(delta) else f" (convergence delta {delta:.2g})"
    axes.set_title("word scores towards the predicted class" + note, fontsize=9)
