"""Integration tests: a real TorchServe (Java 17+) or a headless Chromium; marked `integration`."""
