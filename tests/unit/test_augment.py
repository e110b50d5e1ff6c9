"""Token-level augmentation: rates, what is inserted, nearest frozen neighbours."""
import numpy as np

from model.encoders import UNK_INDEX
from training.augment import (
    make_augment,
    tail_neighbours,
    topical_insertion,
    topical_words,
    word_dropout,
    word_insertion,
)

SEQUENCES = [[2, 3, 4, 5, 6, 7]] * 2000


def test_word_dropout_rate_and_shape():
    out = word_dropout(SEQUENCES, 0.3, np.random.default_rng(0))
    assert [len(s) for s in out] == [6] * len(SEQUENCES)
    share = np.mean([t == UNK_INDEX for s in out for t in s])
    assert 0.28 < share < 0.32
    assert word_dropout(SEQUENCES[:5], 0.0, np.random.default_rng(0)) == SEQUENCES[:5]


def test_word_insertion_adds_one_pool_word_at_the_given_rate():
    pool = np.array([9, 10])
    out = word_insertion(SEQUENCES, 0.5, pool, np.random.default_rng(0))
    grown = [s for s in out if len(s) == 7]
    assert 0.45 < len(grown) / len(out) < 0.55
    assert all(len(s) in (6, 7) for s in out)
    assert all(sorted(set(s) - set(SEQUENCES[0])) in ([9], [10]) for s in grown)


def test_tail_neighbours_are_the_closest_frozen_rows():
    # Rows 0, 1: PAD, UNK; 2-3 learned; 4-5 the frozen tail.
    matrix = np.array([[0, 0], [1, 1], [1, 0.1], [0.1, 1], [0, 2], [3, 0]], dtype=np.float32)
    assert tail_neighbours(matrix, num_trainable=4).tolist() == [0, 1, 5, 4, 4, 5]


def test_no_augmentation_without_a_rate():
    assert make_augment(SEQUENCES) is None
    augment = make_augment(SEQUENCES, dropout=0.5)
    assert augment(SEQUENCES[:50], np.zeros(50), np.random.default_rng(0)) != SEQUENCES[:50]


def test_topical_insertion_adds_a_word_of_another_class_and_never_an_excluded_one():
    # Class 0 headlines use words 2, 3; class 1 headlines use 4, 5; word 6 is in both.
    sequences = [[2, 3, 6]] * 10 + [[4, 5, 6]] * 10
    labels = np.array([0] * 10 + [1] * 10)
    pools = topical_words(sequences, labels, 2, exclude={3})
    assert sorted(set(pools[0].tolist())) == [2] and sorted(set(pools[1].tolist())) == [4, 5]
    out = topical_insertion(sequences, labels, 0.999, pools, np.random.default_rng(0))
    for seq, label in zip(out, labels, strict=True):
        (added,) = set(seq) - set(sequences[0 if label == 0 else 10])
        assert added in ([4, 5] if label == 0 else [2])
