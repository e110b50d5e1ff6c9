import numpy as np
import pytest

from model.encoders import PAD_INDEX, UNK_INDEX, LabelEncoder, Tokenizer, pad_sequences


def test_label_encoder_round_trip(tmp_path):
    enc = LabelEncoder.fit(["World", "Sports", "World", "Business"])
    assert enc.classes == ["Business", "Sports", "World"]
    assert enc.decode(enc.encode(["World", "Business"])) == ["World", "Business"]
    enc.save(tmp_path / "labels.json")
    assert LabelEncoder.load(tmp_path / "labels.json").classes == enc.classes


def test_tokenizer_caps_vocabulary_and_maps_unknown():
    tok = Tokenizer.fit(["b a a", "c b a", "d"], num_tokens=4)
    assert tok.index_to_token == ["<PAD>", "<UNK>", "a", "b"]
    assert tok.encode("a b c zzz") == [2, 3, UNK_INDEX, UNK_INDEX]
    assert tok.decode([2, 3, PAD_INDEX]) == ["a", "b"]


def test_tokenizer_round_trip_keeps_frozen_tail(tmp_path):
    tok = Tokenizer.fit(["a b", "a"]).extend(["x", "a", "y", "z"], max_size=6)
    assert tok.index_to_token[4:] == ["x", "y"] and tok.num_trainable == 4
    tok.save(tmp_path / "tok.json")
    back = Tokenizer.load(tmp_path / "tok.json")
    assert back.index_to_token == tok.index_to_token and back.num_trainable == 4
    assert back.encode("y a q") == [5, 2, UNK_INDEX]


def test_tokenizer_rejects_bad_vocabulary():
    with pytest.raises(ValueError):
        Tokenizer(["a", "b"])


def test_pad_to_longest_in_batch():
    padded = pad_sequences([[5, 6], [7, 8, 9, 10]], min_length=3)
    assert padded.shape == (2, 4)
    assert padded[0].tolist() == [5, 6, PAD_INDEX, PAD_INDEX]


def test_pad_never_shorter_than_widest_filter():
    padded = pad_sequences([[5], []], min_length=3)
    assert padded.shape == (2, 3)
    assert np.all(padded[1] == PAD_INDEX)
