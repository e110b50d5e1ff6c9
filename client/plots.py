"""A picture of one explanation: conv activations per filter width over the tokens (like the
seed's heatmap) above a bar chart of each token's Integrated Gradients score."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
# The object-oriented API with the Agg canvas: no pyplot global state, no display needed.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

REQUIRED_KEYS = ("tokens", "activations", "picks", "token_scores", "ngrams")


def plot_explanation(explanation: dict, path: str | Path) -> None:
    """Write a PNG of one headline's explanation (a dict from /explanations) to `path`.

    Top: one heatmap row per filter width; cell (width, token) is the highest activation,
    among the filters that count, of the window sitting at that token, and its number is
    how many of those filters max-pooled there. Bottom: signed token scores towards the
    predicted class (green for, red against).
    """
    missing = [k for k in REQUIRED_KEYS if k not in explanation]
    if missing:
        raise ValueError(f"not an explanation (missing {', '.join(missing)}): "
                         "pass one item of an /explanations response")
    tokens = explanation["tokens"]
    figure = Figure(figsize=(max(7.0, 0.9 * len(tokens) + 2.0), 6.0), layout="constrained")
    FigureCanvasAgg(figure)
    title = _title(explanation)
    if not tokens:
        figure.text(0.5, 0.5, "no words left after preprocessing", ha="center", va="center")
        figure.suptitle(title)
        figure.savefig(path, format="png")
        return

    heat_axes, bar_axes = figure.subplots(2, 1, height_ratios=[len(explanation["activations"]), 3])
    _heatmap(heat_axes, explanation, tokens)
    _bars(bar_axes, explanation["token_scores"], tokens, explanation.get("delta"))
    figure.suptitle(title)
    figure.savefig(path, format="png", dpi=100)


def _title(explanation: dict) -> str:
    label = explanation.get("label") or explanation.get("explained_class") or "?"
    ngrams = explanation["ngrams"]
    picked = ", ".join(f"{w}: {n['ngram']}" for w, n in sorted(ngrams.items()) if n.get("ngram"))
    return f"predicted {label}" + (f"\ntop n-grams  {picked}" if picked else "")


def _heatmap(axes, explanation: dict, tokens: list[str]) -> None:
    widths = sorted(explanation["activations"], key=int)
    values = np.array([[np.nan if v is None else v for v in explanation["activations"][w]]
                       for w in widths], dtype=float)
    image = axes.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis")
    axes.figure.colorbar(image, ax=axes, label="activation")
    for row, width in enumerate(widths):
        for col, count in enumerate(explanation["picks"][width]):
            if count:
                # Dark text on the bright end of viridis, light text elsewhere.
                bright = np.isfinite(values[row, col]) and image.norm(values[row, col]) > 0.6
                axes.text(col, row, str(count), ha="center", va="center",
                          color="black" if bright else "white", fontsize=8)
    axes.set_yticks(range(len(widths)), [f"width {w}" for w in widths])
    axes.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right")
    selection = explanation.get("filter_selection", "informative")
    axes.set_title(f"conv activations of {selection} filters; numbers = max-pool picks\n"
                   "(column = the window at that token: width 2 with the next, width 3 centred)",
                   fontsize=8)


def _bars(axes, scores: list[float], tokens: list[str], delta: float | None) -> None:
    colors = ["tab:green" if s >= 0 else "tab:red" for s in scores]
    axes.bar(range(len(scores)), scores, color=colors)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right")
    axes.set_ylabel("IG score")
    note = "" if delta is None or math.isnan(delta) else f" (convergence delta {delta:.2g})"
    axes.set_title("word scores towards the predicted class" + note, fontsize=9)
