import numpy as np
import torch

from model.cnn import CNN
from model.config import ModelConfig
from training.config import TrainConfig
from training.train import Trainer, batch_order, batches, class_weights


def options(**kwargs) -> TrainConfig:
    """A plain recipe (one learning rate, no label smoothing) on batches of 4, and `kwargs`."""
    return TrainConfig(**{"batch_size": 4, "lr": 1e-3, "embedding_lr": 1e-3, "label_smoothing": 0.0,
                          **kwargs})


def make_trainer(augment=None, **kwargs) -> Trainer:
    torch.manual_seed(0)
    model = CNN(ModelConfig(vocab_size=20, num_classes=2, embedding_dim=4, num_filters=3,
                            hidden_dim=5))
    return Trainer(model, torch.ones(2), options(**kwargs), device="cpu", augment=augment)


def toy_data(n: int = 16):
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(2, 20, size=rng.integers(1, 6))) for _ in range(n)]
    return sequences, np.array([s[0] % 2 for s in sequences], dtype=np.int64)


def test_batches_pad_to_longest_and_widest_filter():
    sequences = [[2], [3, 4], [5, 6, 7, 8, 9]]
    shapes = [tuple(ids.shape) for _, ids, _ in batches(sequences, np.zeros(3, dtype=np.int64), 2, 3)]
    assert shapes == [(2, 3), (1, 5)]


def test_shuffled_batches_hold_similar_lengths_and_every_row_once():
    lengths = np.random.default_rng(0).integers(1, 30, size=1000)
    order = batch_order(lengths, 10, shuffle=True, generator=np.random.default_rng(1))
    assert sorted(np.concatenate(order).tolist()) == list(range(1000))
    # Within a run of sorted rows a batch spans a narrow length range; unsorted batches of
    # 10 rows drawn from 1..29 span about 24.
    spans = [lengths[rows].max() - lengths[rows].min() for rows in order]
    assert np.mean(spans) < 5
    again = batch_order(lengths, 10, shuffle=True, generator=np.random.default_rng(1))
    other = batch_order(lengths, 10, shuffle=True, generator=np.random.default_rng(2))
    assert all(np.array_equal(a, b) for a, b in zip(order, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(order, other, strict=True))


def test_predict_keeps_the_input_order():
    trainer = make_trainer()
    sequences, _ = toy_data(40)  # lengths 1..5: batches regroup them by length
    together = trainer.predict(sequences)
    alone = np.concatenate([trainer.predict([s]) for s in sequences])
    assert np.allclose(together, alone, atol=1e-6)


def test_class_weights_inverse_frequency():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert torch.allclose(weights, torch.tensor([1 / 3, 1.0, 1.0]))


def scripted(losses, **kwargs) -> Trainer:
    trainer = make_trainer(**kwargs)
    snapshots = []

    def evaluate_loss(sequences, labels):
        snapshots.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        return losses[len(snapshots) - 1]

    trainer.evaluate_loss = evaluate_loss
    trainer.snapshots = snapshots
    return trainer


def test_restores_best_epoch_not_last():
    trainer = scripted([0.9, 0.4, 0.6, 0.7], epochs=4, patience=5)
    history = trainer.fit(toy_data(), toy_data())
    assert history.best_epoch == 2 and len(history.val_loss) == 4
    final = trainer.model.state_dict()
    for name, value in trainer.snapshots[1].items():
        assert torch.equal(final[name], value), name
    assert not torch.equal(final["fc2.weight"], trainer.snapshots[3]["fc2.weight"])


def test_early_stopping_after_patience():
    trainer = scripted([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], epochs=6, patience=2)
    history = trainer.fit(toy_data(), toy_data())
    assert len(history.val_loss) == 3 and history.best_epoch == 1


def test_training_lowers_loss_and_predicts_probabilities():
    trainer = make_trainer(epochs=15, patience=15, lr=0.01)
    data = toy_data(32)
    history = trainer.fit(data, data)
    assert history.train_loss[-1] < history.train_loss[0]
    probs = trainer.predict(data[0])
    assert probs.shape == (32, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_embedding_rows_get_their_own_learning_rate():
    trainer = make_trainer(lr=1e-3, embedding_lr=1e-2)
    rates = sorted(group["lr"] for group in trainer.optimizer.param_groups)
    assert rates == [1e-3, 1e-2]


def test_frozen_tail_unchanged_by_fit():
    torch.manual_seed(0)
    model = CNN(ModelConfig(vocab_size=20, num_classes=2, num_trainable=12, embedding_dim=4,
                            num_filters=3, hidden_dim=5))
    model.embeddings.load_vectors(np.random.default_rng(0).normal(size=(20, 4)))
    frozen = model.embeddings.frozen.clone()
    trainer = Trainer(model, torch.ones(2), options(embedding_lr=0.1, epochs=2))
    data = toy_data()  # ids 2..19: learned rows and tail rows
    trainer.fit(data, data)
    assert torch.equal(trainer.model.embeddings.frozen, frozen)


def test_label_smoothing_trains_but_the_validation_loss_stays_plain():
    smoothed, plain = make_trainer(label_smoothing=0.2), make_trainer()
    data = toy_data()
    assert smoothed.evaluate_loss(*data) == plain.evaluate_loss(*data)  # same init, plain CE
    _, ids, y = next(batches(data[0], data[1], 16, 3))
    logits = smoothed.model(ids)
    assert smoothed.loss_fn(logits, y).item() != plain.loss_fn(logits, y).item()


def test_weight_decay_spares_the_embedding_table():
    trainer = make_trainer(weight_decay=1e-4, embedding_lr=1e-2)
    decay = {group["lr"]: group["weight_decay"] for group in trainer.optimizer.param_groups}
    assert decay == {1e-3: 1e-4, 1e-2: 0}


def test_augmentation_is_drawn_every_epoch():
    seen = []

    def augment(sequences, labels, rng):
        seen.append(rng.random())
        return [list(s) for s in sequences]

    make_trainer(epochs=3, patience=3, augment=augment).fit(toy_data(), toy_data())
    assert len(seen) == 3 and len(set(seen)) == 3


def test_adversarial_shift_raises_the_loss_and_adds_to_it():
    trainer = make_trainer(adversarial=0.5)
    sequences, labels = toy_data()
    _, ids, y = next(batches(sequences, labels, 16, 3))
    embedded, mask = trainer.model.embeddings(ids), trainer.model.position_mask(ids)
    trainer.model.eval()  # no dropout: the two losses differ only by the shift
    loss = trainer.loss_fn(trainer.model.from_embedded(embedded, mask), y)
    assert trainer.adversarial_loss(embedded, mask, y, loss).item() > loss.item()
    # A shift against the gradient lowers it: the direction, not any change, raises the loss.
    trainer.adversarial = -0.5
    assert trainer.adversarial_loss(embedded, mask, y, loss).item() < loss.item()
