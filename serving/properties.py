"""Read and write TorchServe's config.properties, and the endpoint URLs it declares."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config.properties"
METRICS_CONFIG = REPO_ROOT / "serving" / "metrics.yaml"
# The name TorchServe serves the model under: model_store/news_cnn.mar, `load_models` here.
MODEL_NAME = "news_cnn"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def read_properties(path: str | Path) -> dict[str, str]:
    """key=value lines of a Java properties file (comments and blank lines skipped)."""
    properties = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def write_properties(dest: str | Path, base: str | Path | None = DEFAULT_CONFIG,
                     **overrides: object) -> Path:
    """Write `base`'s properties with `overrides` applied (None removes a key) to `dest`."""
    properties = read_properties(base) if base else {}
    for key, value in overrides.items():
        if value is None:
            properties.pop(key, None)
        else:
            properties[key] = str(value)
    dest = Path(dest)
    dest.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
    return dest


def effective(properties: dict[str, str], key: str, default: str,
              environ: dict[str, str] | None = None) -> str:
    """A setting as TorchServe reads it: with enable_envvars_config, the TS_<KEY> environment
    variable wins over the file (TorchServe 0.12's rule, for every key but allowed_urls)."""
    environ = os.environ if environ is None else environ
    value = properties.get(key, default)
    if properties.get("enable_envvars_config", "false").strip().lower() == "true":
        value = environ.get(f"TS_{key.upper()}", value)
    return value.strip()


def token_auth_enabled(properties: dict[str, str], environ: dict[str, str] | None = None) -> bool:
    """Whether TorchServe asks for keys: on unless the config (or, with enable_envvars_config,
    TS_DISABLE_TOKEN_AUTHORIZATION) turns it off, as a cluster with its own gateway does."""
    return effective(properties, "disable_token_authorization", "false", environ).lower() != "true"


def open_management(properties: dict[str, str], environ: dict[str, str] | None = None) -> str | None:
    """Why this configuration would expose the management APIs to anyone, or None: without
    token authorization, anyone who reaches them (REST or gRPC) can scale or stop workers and,
    in TorchServe 0.12, register workflows (not gated by enable_model_api): loopback only."""
    if token_auth_enabled(properties, environ):
        return None
    for key, default in (("management_address", "http://127.0.0.1:8081"),
                         ("grpc_management_address", "127.0.0.1")):
        value = effective(properties, key, default, environ)
        host = urlsplit(value).hostname if "//" in value else value
        if host not in LOOPBACK:
            return (f"token authorization is off and {key} is {value}: anyone who reaches it could "
                    f"manage the models. Set {key} (or TS_{key.upper()}) to a loopback address "
                    f"such as 127.0.0.1, or turn token authorization on")
    return None


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of TorchServe's three APIs."""

    inference: str = "http://127.0.0.1:8080"
    management: str = "http://127.0.0.1:8081"
    metrics: str = "http://127.0.0.1:8082"
    # Not TorchServe's: the key-less readiness/liveness server (serving/probe.py), which
    # serving/server.py starts beside TorchServe at `health_address`.
    health: str = "http://127.0.0.1:8083"

    @classmethod
    def from_file(cls, path: str | Path = DEFAULT_CONFIG,
                  environ: dict[str, str] | None = None) -> Endpoints:
        """The addresses a config.properties declares (TorchServe's defaults where absent, its
        TS_ environment variables first where the config lets them override)."""
        properties = read_properties(path)
        default = cls()
        return cls(
            inference=effective(properties, "inference_address", default.inference, environ).rstrip("/"),
            management=effective(properties, "management_address", default.management, environ).rstrip("/"),
            metrics=effective(properties, "metrics_address", default.metrics, environ).rstrip("/"),
            health=properties.get("health_address", default.health).rstrip("/"),
        )

    @classmethod
    def on_ports(cls, inference: int, management: int, metrics: int, health: int | None = None,
                 host: str = "127.0.0.1") -> Endpoints:
        """The three APIs (and the health server, when `health` is given) on `host`."""
        return cls(f"http://{host}:{inference}", f"http://{host}:{management}",
                   f"http://{host}:{metrics}",
                   *([f"http://{host}:{health}"] if health is not None else []))

    def as_properties(self) -> dict[str, str]:
        """The config.properties entries that bind these addresses."""
        return {"inference_address": self.inference, "management_address": self.management,
                "metrics_address": self.metrics, "health_address": self.health}
