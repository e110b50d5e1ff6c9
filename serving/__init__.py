"""TorchServe around the news_cnn archive, one module per job: archive (build and read the
.mar); server, status and supervisor (run TorchServe: `python -m serving`); health and probe
(readiness, and its key-less HTTP face); offline, offline_pool and ray_batch (the archive
without a server); monitoring (Prometheus rules); and the layers all share: rest (HTTP),
management (its API), keys, properties (config.properties), ports, polling (wait_for) and
cli (the one style of the project's command lines).
"""
