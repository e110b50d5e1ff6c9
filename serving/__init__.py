"""Build the news_cnn archive and run TorchServe around it (used by the Makefile, tests, bench).

    serving.archive.build_archive(artifacts_dir, export_dir, version=None) -> Path to .mar
    serving.properties.write_properties(dest, base=..., **overrides); Endpoints.from_file(path)
    serving.keys.read_keys(key_file) -> Keys; serving.keys.renew(kind, key_file, management_url)
    serving.server.TorchServe(workdir, config): start(), wait_ready(), stop(), scale(), describe()
    serving.server.free_port(), serving.server.config_on_free_ports(...) for servers on free ports
    serving.health: HealthChecker (ready/live); serving.probe: ProbeServer (key-less GET /ready, /live)
    python -m serving {start,stop,status,ready,live,keys,examples,probe,run} for the Makefile.
"""
