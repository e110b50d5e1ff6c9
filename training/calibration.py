"""Expected calibration error and temperature scaling (Guo et al., 2017).

The temperature is fitted on the validation split and kept only if it lowers the validation
ECE: the decision never looks at the test split, whose ECE is reported before and after.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

ECE_BINS = 15
# Search range of the temperature; the bounds are far from any fitted value seen (about 1-3).
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Confidence-binned ECE: sum over equal-width bins of |accuracy - mean confidence|,
    weighted by the share of headlines in the bin (top-class confidence, bins (a, b])."""
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(probs) / T): the same as dividing the logits by T (softmax drops the
    constant that separates log-probabilities from logits)."""
    logits = np.log(np.clip(probs, 1e-30, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels`."""
    def nll(temperature: float) -> float:
        scaled = with_temperature(probs, temperature)
        return float(-np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-12, None)).mean())

    found = minimize_scalar(nll, bounds=(MIN_TEMPERATURE, MAX_TEMPERATURE), method="bounded")
    return float(found.x)


def calibrate(val_probs: np.ndarray, val_labels: np.ndarray,
              reported: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Fit a temperature on validation, keep it if it lowers the validation ECE; report the
    ECE of validation and of each `reported` part (name -> probabilities, labels) before and
    after it, as "<name>_ece". `temperature` is the one to serve (1.0 if not kept)."""
    fitted = fit_temperature(val_probs, val_labels)
    val_before = expected_calibration_error(val_probs, val_labels)
    val_after = expected_calibration_error(with_temperature(val_probs, fitted), val_labels)
    applied = val_after < val_before
    result = {
        "bins": ECE_BINS,
        "fitted_temperature": round(fitted, 4),
        "applied": bool(applied),
        "temperature": round(fitted, 4) if applied else 1.0,
        "val_ece": {"before": round(val_before, 4), "after": round(val_after, 4)},
    }
    for name, (probs, labels) in reported.items():
        result[f"{name}_ece"] = {
            "before": round(expected_calibration_error(probs, labels), 4),
            "after": round(expected_calibration_error(with_temperature(probs, fitted), labels), 4)}
    return result
