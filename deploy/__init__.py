"""Deployment files (Docker image, KServe) and the helper that lays out KServe's storage."""
