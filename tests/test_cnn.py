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
