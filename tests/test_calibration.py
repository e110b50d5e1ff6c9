"""ECE and temperature scaling on probabilities whose calibration is known by construction."""
import numpy as np
import pytest

from training.calibration import calibrate, expected_calibration_error, fit_temperature, with_temperature


def test_ece_by_hand():
    # Two headlines at 0.9 confidence (one right), two at 0.6 (both right):
    # 0.5 * |0.5 - 0.9| + 0.5 * |1.0 - 0.6| = 0.4.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(probs, np.array([0, 1, 0, 0])) == pytest.approx(0.4)


def synthetic(sharpen: float, n: int = 20_000, seed: int = 0):
    """Labels drawn from softmax(z); the model reports softmax(sharpen * z)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(n, 4))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in true])
    reported = np.exp(sharpen * logits)
    return reported / reported.sum(axis=1, keepdims=True), labels, true


def test_temperature_undoes_overconfidence():
    probs, labels, true = synthetic(sharpen=3.0)
    assert fit_temperature(probs, labels) == pytest.approx(3.0, rel=0.1)
    assert np.allclose(with_temperature(probs, 3.0), true, atol=1e-6)


def test_calibrate_serves_the_temperature_only_when_validation_ece_drops():
    probs, labels, _ = synthetic(sharpen=3.0, seed=1)
    report = calibrate(probs[:10_000], labels[:10_000], probs[10_000:], labels[10_000:])
    assert report["applied"] and report["temperature"] == report["fitted_temperature"]
    assert report["test_ece"]["after"] < report["test_ece"]["before"] / 3
    # Already calibrated: a fitted temperature near 1 that does not lower ECE is not served.
    calibrated, labels, _ = synthetic(sharpen=1.0, seed=2)
    report = calibrate(calibrated[:10_000], labels[:10_000], calibrated[10_000:], labels[10_000:])
    assert report["fitted_temperature"] == pytest.approx(1.0, abs=0.1)
    assert report["temperature"] == (report["fitted_temperature"] if report["applied"] else 1.0)
