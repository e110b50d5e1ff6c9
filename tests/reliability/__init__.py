"""The reliability suite: a served archive under load, faults, bad input and attack (pytest -m soak)."""
