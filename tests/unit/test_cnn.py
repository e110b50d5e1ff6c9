import numpy as np
import pytest
import torch

from model.cnn import CNN
from model.config import ModelConfig


def small_model(**overrides) -> CNN:
    torch.manual_seed(0)
    config = ModelConfig(**{"vocab_size": 30, "num_classes": 4, "num_trainable": 20,
                            "embedding_dim": 8, **overrides})
    return CNN(config)


@pytest.mark.parametrize("overrides", [{}, {"filter_sizes": [2, 4], "num_filters": 5, "hidden_dim": 7}],
                         ids=["defaults", "other widths"])
def test_shapes_follow_the_config(overrides):
    """Each width's map keeps the headline's length ("same" padding); fc1 reads one pooled
    feature per filter of each width; one logit per class comes out."""
    model = small_model(**overrides)
    config = model.config
    assert model.fc1.in_features == len(config.filter_sizes) * config.num_filters
    assert model.fc1.out_features == config.hidden_dim
    ids = torch.randint(0, 30, (5, 7))
    maps = model.feature_maps(ids)
    assert [tuple(m.shape) for m in maps] == [(5, config.num_filters, 7)] * len(config.filter_sizes)
    assert tuple(model(ids).shape) == (5, 4)


def test_batch_padding_does_not_change_prediction():
    model = small_model().eval()
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0, 0, 0]])
    assert torch.allclose(model(short), model(padded), atol=1e-6)


def test_the_tail_is_a_saved_buffer_that_tail_indices_read():
    """The frozen rows are no parameter (no optimizer can move them; tests/unit/test_train.py
    trains and finds them unchanged), travel in the state dict, and answer the tail's indices
    while the learned rows answer theirs."""
    model = small_model()
    vectors = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    model.embeddings.load_vectors(vectors)
    frozen = model.embeddings.frozen
    assert not frozen.requires_grad and all(p is not frozen for p in model.parameters())
    assert torch.equal(model.state_dict()["embeddings.frozen"], torch.from_numpy(vectors[20:]))
    looked_up = model.embeddings(torch.tensor([[2, 19, 20, 29]]))[0]
    assert torch.allclose(looked_up, torch.from_numpy(vectors[[2, 19, 20, 29]]))


def test_frozen_embeddings_option():
    model = small_model(freeze_embeddings=True)
    assert not model.embeddings.trainable.weight.requires_grad


def test_one_stacked_convolution_equals_one_convolution_per_width():
    """convolve() stacks the widths' kernels; each width's map must equal its own Conv1d
    with the "same" padding of the seed (Made-With-ML's "Embeddings" lesson), for every
    position and any length."""
    import torch.nn.functional as F

    from model.cnn import CNN, same_padding
    from model.config import ModelConfig

    torch.manual_seed(0)
    model = CNN(ModelConfig(vocab_size=30, num_classes=4, embedding_dim=8, num_filters=5,
                            filter_sizes=[1, 2, 3, 4]))
    for length in (1, 2, 5):
        x = torch.randn(3, 8, length)
        for conv, size, fused in zip(model.convs, [1, 2, 3, 4], model.convolve(x), strict=True):
            left, right = same_padding(size)
            expected = conv(F.pad(x, (left, right)))
            assert fused.shape == expected.shape == (3, 5, length)
            assert torch.allclose(fused, expected, atol=1e-6)
