"""Which ports a config.properties asks TorchServe to open, and who holds any that is taken.

TorchServe 0.12 reports a taken port only in its own log and then exits ("TorchServe exited
while starting" is all its caller sees). Checking first lets the message name the port, the
setting that chose it and, when the system tells, the process.
"""
from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from serving.properties import Endpoints, read_properties

# TorchServe's gRPC defaults when config.properties names none.
DEFAULT_GRPC = {"grpc_inference_port": 7070, "grpc_management_port": 7071}


@dataclass(frozen=True)
class Port:
    """One address TorchServe binds, and the config.properties key that sets it."""

    setting: str
    host: str
    port: int


def configured_ports(config: str | Path) -> list[Port]:
    """The addresses of a config.properties' three HTTP APIs, two gRPC services and health
    server (ours, started beside TorchServe: serving/probe.py)."""
    ports = []
    for setting, url in Endpoints.from_file(config).as_properties().items():
        parts = urlsplit(url)
        ports.append(Port(setting, parts.hostname or "127.0.0.1",
                          parts.port or (443 if parts.scheme == "https" else 80)))
    properties = read_properties(config)
    for setting, default in DEFAULT_GRPC.items():
        address = properties.get(setting.replace("_port", "_address"), "0.0.0.0")
        ports.append(Port(setting, address, int(properties.get(setting, default))))
    return ports


def is_taken(port: Port) -> bool:
    """True when something already listens on (or has bound) the port's address."""
    family = socket.AF_INET6 if ":" in port.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like the server will: a closed connection lingering in TIME_WAIT does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((port.host, port.port))
        except OSError as err:
            return err.errno == errno.EADDRINUSE
    return False


def holder(port: int) -> str | None:
    """"pid N (what it is)" of the process listening on `port`, when the system says."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None  # other users' sockets need privileges on some systems
    pid = next((c.pid for c in connections if c.laddr and c.laddr.port == port
                and c.status == psutil.CONN_LISTEN and c.pid is not None), None)
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if any("org.pytorch.serve.ModelServer" in part for part in process.cmdline()):
            return f"pid {pid} (a TorchServe started from {process.cwd()})"
        return f"pid {pid} ({' '.join(process.cmdline())[:80] or process.name()})"
    except psutil.Error:
        return f"pid {pid}"


def taken_ports_message(config: str | Path, skip: frozenset[str] = frozenset()) -> str | None:
    """One line naming every taken port of `config` (but the settings in `skip`), its setting
    and holder; None if all free."""
    by_holder: dict[str | None, list[str]] = {}
    for port in configured_ports(config):
        if port.setting not in skip and is_taken(port):
            by_holder.setdefault(holder(port.port), []).append(f"{port.port} ({port.setting})")
    if not by_holder:
        return None
    parts = [f"port{'s' if len(ports) > 1 else ''} {', '.join(ports)} "
             f"{'are' if len(ports) > 1 else 'is'} taken" + (f" by {who}" if who else "")
             for who, ports in by_holder.items()]
    return (f"{'; '.join(parts)}: stop what holds it (`make stop` if it is this project's "
            f"TorchServe) or change the port in {config}")
