import numpy as np
import torch

from model.cnn import CNN
from model.config import ModelConfig


def small_model(**overrides) -> CNN:
    torch.manual_seed(0)
    config = ModelConfig(**{"vocab_size": 30, "num_classes": 4, "num_trainable": 20,
                            "embedding_dim": 8, **overrides})
    return CNN(config)


def test_seed_architecture_shapes():
    model = small_model()
    assert model.config.filter_sizes == [1, 2, 3] and model.config.num_filters == 50
    assert model.fc1.in_features == 150 and model.fc1.out_features == 100
    ids = torch.randint(0, 30, (5, 7))
    maps = model.feature_maps(ids)
    assert [tuple(m.shape) for m in maps] == [(5, 50, 7)] * 3  # "same" padding keeps length
    assert tuple(model(ids).shape) == (5, 4)


def test_batch_padding_does_not_change_prediction():
    model = small_model().eval()
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0, 0, 0]])
    assert torch.allclose(model(short), model(padded), atol=1e-6)


def test_frozen_tail_rows_do_not_change_in_training():
    model = small_model()
    vectors = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    model.embeddings.load_vectors(vectors)
    frozen_before = model.embeddings.frozen.clone()
    learned_before = model.embeddings.trainable.weight.detach().clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = torch.tensor([[2, 25, 27], [21, 5, 29]])  # learned and tail indices mixed
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(ids), torch.tensor([0, 1])).backward()
        optimizer.step()
    assert torch.equal(model.embeddings.frozen, frozen_before)
    assert not torch.equal(model.embeddings.trainable.weight, learned_before)
    assert "embeddings.frozen" in model.state_dict()
    # Tail indices read the frozen table.
    assert torch.allclose(model.embeddings(torch.tensor([[25]]))[0, 0], torch.from_numpy(vectors[25]))


def test_frozen_embeddings_option():
    model = small_model(freeze_embeddings=True)
    assert not model.embeddings.trainable.weight.requires_grad


def test_one_stacked_convolution_equals_one_convolution_per_width():
    """convolve() stacks the widths' kernels; each width's map must equal its own Conv1d
    with the seed's "same" padding, for every position and any length."""
    import torch.nn.functional as F

    from model.cnn import CNN, same_padding
    from model.config import ModelConfig

    torch.manual_seed(0)
    model = CNN(ModelConfig(vocab_size=30, num_classes=4, embedding_dim=8, num_filters=5,
                            filter_sizes=[1, 2, 3, 4]))
    for length in (1, 2, 5):
        x = torch.randn(3, 8, length)
        for conv, size, fused in zip(model.convs, [1, 2, 3, 4], model.convolve(x)):
            left, right = same_padding(size)
            expected = conv(F.pad(x, (left, right)))
            assert fused.shape == expected.shape == (3, 5, length)
            assert torch.allclose(fused, expected, atol=1e-6)
