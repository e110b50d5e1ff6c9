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


def test_calibrate_serves_a_temperature_that_lowers_validation_ece():
    probs, labels, _ = synthetic(sharpen=3.0, seed=1)
    report = calibrate(probs[:10_000], labels[:10_000], {"test": (probs[10_000:], labels[10_000:])})
    assert report["applied"] and report["temperature"] == report["fitted_temperature"]
    assert report["test_ece"]["after"] < report["test_ece"]["before"] / 3


def binned_calibrated_but_not_within_the_bin():
    """Two confidences inside one ECE bin (0.6, 0.667], each with the other's accuracy: the
    bin's accuracy equals its mean confidence (ECE 0), yet higher confidence is less often
    right, so the likelihood wants a flatter softmax (a temperature above 1)."""
    rows = [(0.61, 66), (0.66, 61)]  # (confidence, right answers out of 100)
    probs = np.array([[c, 1 - c] for c, _ in rows for _ in range(100)])
    labels = np.array([0 if i < right else 1 for _, right in rows for i in range(100)])
    return probs, labels


def test_a_temperature_that_does_not_lower_validation_ece_is_not_served():
    probs, labels = binned_calibrated_but_not_within_the_bin()
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    report = calibrate(probs, labels, {"test": (probs, labels)})
    assert report["fitted_temperature"] > 1.05  # a real temperature was fitted (1.079) ...
    assert report["val_ece"]["after"] > report["val_ece"]["before"]  # ... and it raises ECE
    assert not report["applied"] and report["temperature"] == 1.0
