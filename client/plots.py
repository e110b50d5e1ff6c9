"""A picture of one explanation: conv activations per filter width over the tokens (like the
heatmap of the seed, Made-With-ML's "Embeddings" lesson) above a bar chart of each token's
Integrated Gradients score.

What argues for the predicted class is drawn in green, what argues against it in red: the
n-grams of filters favouring the predicted class (the reason) are framed in solid green,
those of filters favouring another class in dashed red, and word scores below zero are red
bars. A headline the model abstained on gets a picture that says so.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# The object-oriented API with the Agg canvas: no pyplot global state, no display needed.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

REQUIRED_KEYS = ("tokens", "activations", "picks", "token_scores", "ngrams")
FOR_COLOR = "tab:green"
AGAINST_COLOR = "tab:red"


def plot_explanation(explanation: dict, path: str | Path) -> None:
    """Write a PNG of one headline's explanation (a dict from /explanations) to `path`."""
    explanation_figure(explanation).savefig(path, format="png", dpi=100)


def explanation_figure(explanation: dict) -> Figure:
    """The figure of one explanation.

    Top: one heatmap row per filter width; cell (width, token) is the highest activation,
    among the filters that count, of the window sitting at that token, and its text is how
    many of those filters max-pooled there: "+n" favouring the predicted class, "-m"
    favouring another. Each row frames its top supporting n-gram (solid green) and its top
    opposing n-gram (dashed red). Bottom: signed token scores towards the predicted class
    (green for, red against).
    """
    if explanation.get("abstained"):
        return _abstained_figure(explanation)
    missing = [k for k in REQUIRED_KEYS if k not in explanation]
    if missing:
        raise ValueError(f"not an explanation (missing {', '.join(missing)}): "
                         "pass one item of an /explanations response")
    tokens = explanation["tokens"]
    figure = Figure(figsize=(max(7.0, 0.9 * len(tokens) + 2.0), 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(_title(explanation))
    if not tokens:
        figure.text(0.5, 0.5, "no words left after preprocessing", ha="center", va="center")
        return figure
    heat_axes, bar_axes = figure.subplots(2, 1, height_ratios=[len(explanation["activations"]), 3])
    _heatmap(heat_axes, explanation, tokens)
    _bars(bar_axes, explanation["token_scores"], tokens, explanation.get("delta"))
    return figure


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
        picked = ", ".join(f"{w}: {n['ngram']}" for w, n in sorted((explanation.get(key) or {}).items())
                           if n.get("ngram"))
        if picked:
            lines.append(f"n-grams {name}  {picked}")
    return "\n".join(lines)


def _pick_labels(supporting: int, opposing: int) -> str:
    """The text of one heatmap cell: picks for (+) and against (-) the predicted class."""
    return "\n".join(text for count, text in ((supporting, f"+{supporting}"), (opposing, f"-{opposing}"))
                     if count)


def _heatmap(axes, explanation: dict, tokens: list[str]) -> None:
    widths = sorted(explanation["activations"], key=int)
    values = np.array([[np.nan if v is None else v for v in explanation["activations"][w]]
                       for w in widths], dtype=float)
    image = axes.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis")
    axes.figure.colorbar(image, ax=axes, label="activation")
    opposing_picks = explanation.get("opposing_picks") or {}
    for row, width in enumerate(widths):
        against = opposing_picks.get(width) or [0] * len(tokens)
        for col, (count, opposing) in enumerate(zip(explanation["picks"][width], against, strict=True)):
            text = _pick_labels(count, opposing)
            if text:
                # Dark text on the bright end of viridis, light text elsewhere.
                bright = np.isfinite(values[row, col]) and image.norm(values[row, col]) > 0.6
                axes.text(col, row, text, ha="center", va="center",
                          color="black" if bright else "white", fontsize=7)
        _frame(axes, row, (explanation.get("ngrams") or {}).get(width), FOR_COLOR, "solid")
        _frame(axes, row, (explanation.get("opposing_ngrams") or {}).get(width), AGAINST_COLOR, "dashed")
    axes.set_yticks(range(len(widths)), [f"width {w}" for w in widths])
    axes.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right")
    selection = explanation.get("filter_selection", "informative")
    axes.set_title(f"conv activations of {selection} filters; +n / -n = max-pool picks of filters "
                   "for / against the predicted class\n(column = the window at that token: width 2 "
                   "with the next, width 3 centred; frames = top n-gram for / against)", fontsize=8)


def _frame(axes, row: int, ngram: dict | None, color: str, linestyle: str) -> None:
    """Frame the tokens [start, end) of a top n-gram in its width's heatmap row."""
    if not ngram or ngram.get("start") is None:
        return
    start, end = ngram["start"], ngram["end"]
    axes.add_patch(Rectangle((start - 0.5, row - 0.45), end - start, 0.9, fill=False,
                             edgecolor=color, linestyle=linestyle, linewidth=2.5))


def _bars(axes, scores: list[float], tokens: list[str], delta: float | None) -> None:
    colors = [FOR_COLOR if s >= 0 else AGAINST_COLOR for s in scores]
    axes.bar(range(len(scores)), scores, color=colors)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right")
    axes.set_ylabel("IG score")
    # One legend for both panels: bar colours and heatmap frames share the meaning.
    axes.legend(handles=[Patch(color=FOR_COLOR, label="word score for the predicted class"),
                         Patch(color=AGAINST_COLOR, label="word score against it"),
                         Patch(facecolor="none", edgecolor=FOR_COLOR, linewidth=2,
                               label="top n-gram of filters for it (above)"),
                         Patch(facecolor="none", edgecolor=AGAINST_COLOR, linestyle="dashed",
                               linewidth=2, label="top n-gram of filters against it (above)")],
                loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    note = "" if delta is None or math.isnan(delta) else f" (convergence delta {delta:.2g})"
    axes.set_title("word scores towards the predicted class" + note, fontsize=9)
