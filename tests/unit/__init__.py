"""Unit tests: the code on its own, with tiny artifacts and fakes (no TorchServe, no trained model)."""
