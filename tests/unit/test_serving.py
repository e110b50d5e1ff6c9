"""Unit tests of the serving helpers: archive contents, properties, key file handling, client CLI."""
from __future__ import annotations

import json
import os
import stat
import sys
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
import requests

from client.news_cnn import build_parser
from serving import keys as keyfile
from serving.archive import ArchiveError, build_archive
from serving.archive import main as archive_main
from serving.properties import DEFAULT_CONFIG, Endpoints, read_properties, write_properties
from serving.server import free_ports


def test_archive_holds_handler_model_package_and_artifacts(tiny_artifacts, tmp_path):
    mar = build_archive(tiny_artifacts, tmp_path)
    names = set(zipfile.ZipFile(mar).namelist())
    assert {"handler.py", "request_parsing.py", "model-config.yaml", "model/__init__.py",
            "model/predictor.py", "model/cnn.py", "model.pt", "tokenizer.json", "manifest.json",
            "preprocessor.json", "label_encoder.json", "model_config.json"} <= names
    assert not any("__pycache__" in n for n in names)
    manifest = json.loads(zipfile.ZipFile(mar).read("MAR-INF/MANIFEST.json"))
    assert manifest["model"]["modelVersion"] == "0.1.0"  # from the artifacts' manifest.json
    assert manifest["model"]["handler"] == "handler.py"


def test_archive_version_can_be_overridden(tiny_artifacts, tmp_path):
    mar = build_archive(tiny_artifacts, tmp_path, version="2.0")
    assert json.loads(zipfile.ZipFile(mar).read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"] == "2.0"


def _versions(store) -> dict[str, str]:
    return {mar.name: json.loads(zipfile.ZipFile(mar).read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"]
            for mar in store.glob("*.mar")}


def test_a_versioned_build_leaves_the_served_archive_alone_unless_promoted(tiny_artifacts, tmp_path):
    """`make archive VERSION=2.0` must not change what `make serve` serves; PROMOTE=1 does."""
    store = tmp_path / "store"
    common = ["--artifacts", str(tiny_artifacts), "--export-path", str(store)]
    assert archive_main(common) == 0
    assert archive_main(common + ["--version", "2.0", "--versioned"]) == 0
    assert _versions(store) == {"news_cnn.mar": "0.1.0", "news_cnn_v2.0.mar": "2.0"}
    assert archive_main(common + ["--version", "3.0", "--versioned", "--promote"]) == 0
    assert _versions(store) == {"news_cnn.mar": "3.0", "news_cnn_v2.0.mar": "2.0", "news_cnn_v3.0.mar": "3.0"}


@pytest.mark.parametrize("version", ["../../etc/x", "2.0/evil", "..", "2 0", "", "v2;rm"])
def test_a_version_outside_letters_digits_and_dot_dash_underscore_is_refused(tiny_artifacts, tmp_path,
                                                                             capsys, version):
    store = tmp_path / "store"
    with pytest.raises(SystemExit) as exit_info:
        archive_main(["--artifacts", str(tiny_artifacts), "--export-path", str(store),
                      "--version", version, "--versioned"])
    assert exit_info.value.code == 2 and "letters, digits and . _ -" in capsys.readouterr().err
    assert not store.exists() or not any(store.iterdir())
    with pytest.raises(ArchiveError, match="letters, digits"):
        build_archive(tiny_artifacts, store, version=version or "/")


def test_a_version_of_letters_digits_and_dot_dash_underscore_names_the_file(tiny_artifacts, tmp_path):
    assert archive_main(["--artifacts", str(tiny_artifacts), "--export-path", str(tmp_path),
                         "--version", "2.1_rc-1", "--versioned"]) == 0
    assert (tmp_path / "news_cnn_v2.1_rc-1.mar").is_file()


def test_promote_without_a_versioned_build_is_refused(tiny_artifacts, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        archive_main(["--artifacts", str(tiny_artifacts), "--export-path", str(tmp_path), "--promote"])
    assert exit_info.value.code == 2 and "--promote goes with --versioned" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.mar"))


def test_archive_refuses_incomplete_artifacts(tmp_path):
    with pytest.raises(ArchiveError, match="lacks model.pt"):
        build_archive(tmp_path, tmp_path / "store")


def test_project_config_keeps_the_secure_defaults():
    properties = read_properties(DEFAULT_CONFIG)
    assert properties["enable_model_api"] == "false"
    assert "disable_token_authorization" not in properties
    assert properties["metrics_mode"] == "prometheus"
    assert properties["load_models"] == "news_cnn.mar"
    for key in ("inference_address", "management_address", "metrics_address"):
        assert properties[key].startswith("http://127.0.0.1:")
    # No URL can be fetched: the pattern matches only "", which TorchServe refuses first.
    assert properties["allowed_urls"] == "^$"


def test_write_properties_overrides_and_removes(tmp_path):
    out = write_properties(tmp_path / "c.properties", DEFAULT_CONFIG, job_queue_size=7, load_models=None)
    properties = read_properties(out)
    assert properties["job_queue_size"] == "7" and "load_models" not in properties
    assert Endpoints.from_file(out) == Endpoints.from_file(DEFAULT_CONFIG)


def test_free_ports_are_distinct():
    ports = free_ports(3)
    assert len(set(ports)) == 3


def write_key_file(path, expires_in: timedelta):
    when = (datetime.now(timezone.utc) + expires_in).isoformat().replace("+00:00", "Z")
    path.write_text(json.dumps({"management": {"key": "m1", "expiration time": when},
                                "inference": {"key": "i1", "expiration time": when},
                                "API": {"key": "a1"}}))


def test_read_keys_parses_torchserve_key_file(tmp_path):
    write_key_file(tmp_path / "key_file.json", timedelta(hours=1))
    keys = keyfile.read_keys(tmp_path / "key_file.json")
    assert (keys.inference, keys.management, keys.api) == ("i1", "m1", "a1")
    assert keys.headers("management") == {"Authorization": "Bearer m1"}
    assert keys.expiring() == []


def test_reading_keys_never_renews_them_even_when_about_to_expire(tmp_path, monkeypatch):
    """Renewing locks out every other holder of the old key: only an operator does it."""
    path = tmp_path / "key_file.json"
    write_key_file(path, timedelta(seconds=30))
    monkeypatch.setattr(requests, "post", lambda *a, **k: pytest.fail("a key was renewed"))
    keys = keyfile.read_keys(path)
    assert keys.expiring() == ["inference", "management"]
    assert (keys.inference, keys.management) == ("i1", "m1")


def test_only_inference_and_management_keys_can_be_renewed(tmp_path):
    write_key_file(tmp_path / "key_file.json", timedelta(hours=1))
    with pytest.raises(ValueError, match="not 'api'"):
        keyfile.renew("api", tmp_path / "key_file.json", "http://127.0.0.1:1")


def test_missing_key_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="make serve"):
        keyfile.read_keys(tmp_path / "key_file.json")


def test_client_help_lists_every_option_with_its_default():
    text = build_parser().format_help()
    for option in ("--config", "--key-file", "--model", "--timeout"):
        assert option in text
    assert text.count("default:") >= 4
    parser = build_parser()
    args = parser.parse_args(["explain", "a headline", "--png", "x.png"])
    assert (args.command, args.texts, args.png) == ("explain", ["a headline"], "x.png")


def test_token_auth_is_on_unless_the_config_or_its_allowed_environment_turns_it_off():
    from serving.properties import token_auth_enabled
    assert token_auth_enabled({}, {})
    assert not token_auth_enabled({"disable_token_authorization": "true"}, {})
    # The environment counts only where the config lets it (enable_envvars_config).
    off = {"TS_DISABLE_TOKEN_AUTHORIZATION": "true"}
    assert token_auth_enabled({}, off)
    assert not token_auth_enabled({"enable_envvars_config": "true"}, off)


def test_management_without_tokens_must_listen_on_loopback():
    from serving.properties import open_management
    assert open_management({"management_address": "http://0.0.0.0:8081"}, {}) is None  # keys on
    off = {"disable_token_authorization": "true"}
    assert open_management({**off, "management_address": "http://127.0.0.1:8081"}, {}) is None
    exposed = open_management({**off, "management_address": "http://0.0.0.0:8081"}, {})
    assert "management_address is http://0.0.0.0:8081" in exposed
    assert "grpc_management_address" in open_management({**off, "grpc_management_address": "0.0.0.0"}, {})
    # The environment counts where the config lets it, in both directions.
    envvars = {**off, "enable_envvars_config": "true", "management_address": "http://0.0.0.0:8081"}
    assert open_management(envvars, {"TS_MANAGEMENT_ADDRESS": "http://127.0.0.1:8081"}) is None
    assert open_management({"enable_envvars_config": "true"}, {"TS_DISABLE_TOKEN_AUTHORIZATION": "true",
                                                               "TS_MANAGEMENT_ADDRESS": "http://[::]:8081"})


def test_torchserve_with_open_management_is_refused_before_it_starts(tmp_path, monkeypatch):
    from serving import server
    config = write_properties(tmp_path / "config.properties", DEFAULT_CONFIG,
                              disable_token_authorization="true", management_address="http://0.0.0.0:8081")
    monkeypatch.setattr(server.subprocess, "run", lambda *a, **k: pytest.fail("TorchServe was started"))
    with pytest.raises(server.ServerError, match="token authorization is off"):
        server.TorchServe(tmp_path, config).start()


def test_endpoints_follow_the_environment_where_the_config_lets_them(tmp_path):
    config = write_properties(tmp_path / "c.properties", DEFAULT_CONFIG, enable_envvars_config="true")
    moved = {"TS_MANAGEMENT_ADDRESS": "http://127.0.0.1:9999"}
    assert Endpoints.from_file(config, moved).management == "http://127.0.0.1:9999"
    assert Endpoints.from_file(DEFAULT_CONFIG, moved) == Endpoints.from_file(DEFAULT_CONFIG, {})


def test_the_key_file_is_private_from_its_first_byte(tmp_path, monkeypatch):
    """TorchServe writes key_file.json at its umask and chmods it 0600 afterwards: it is started
    under umask 077, so the file is private from the moment it exists. A stand-in torchserve
    writes the file the way TorchServe does (plain open) and fails, so nothing else runs."""
    from serving import server
    fake = tmp_path / "torchserve"
    fake.write_text(f"#!{sys.executable}\nimport json\nopen('key_file.json', 'w').write(json.dumps({{}}))\n"
                    "raise SystemExit(3)\n")
    fake.chmod(0o755)
    monkeypatch.setattr(server, "_executable", lambda name: str(fake))
    old = os.umask(0o022)  # the usual umask of a shell, whatever this process had
    try:
        workdir = tmp_path / "run"
        workdir.mkdir()
        with pytest.raises(server.ServerError, match="torchserve --start failed"):
            server.TorchServe(workdir, server.config_on_free_ports(workdir, tmp_path)).start()
    finally:
        os.umask(old)
    assert stat.S_IMODE((workdir / "key_file.json").stat().st_mode) == 0o600
