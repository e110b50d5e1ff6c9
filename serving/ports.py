"""Which ports a config.properties asks TorchServe to open, and who holds any that is taken.

TorchServe 0.12 reports a taken port only in its own log and then exits, so `make serve`
used to say no more than "TorchServe exited while starting". Checking first lets the
message name the port, the setting that chose it and, when the system tells, the process.
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
    """The three HTTP APIs' and the two gRPC services' addresses of a config.properties."""
    properties = read_properties(config)
    endpoints = Endpoints.from_file(config)
    ports = []
    for setting, url in (("inference_address", endpoints.inference),
                         ("management_address", endpoints.management),
                         ("metrics_address", endpoints.metrics)):
        parts = urlsplit(url)
        ports.append(Port(setting, parts.hostname or "127.0.0.1",
                          parts.port or (443 if parts.scheme == "https" else 80)))
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
    """"pid N (command line)" of the process listening on `port`, when the system says."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None  # other users' sockets need privileges on some systems
    for connection in connections:
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            if connection.pid is None:
                return None
            try:
                command = " ".join(psutil.Process(connection.pid).cmdline())[:120]
            except psutil.Error:
                command = "?"
            return f"pid {connection.pid} ({command})"
    return None


def taken_ports_message(config: str | Path) -> str | None:
    """One line naming every taken port of `config`, its setting and holder; None if all free."""
    problems = []
    for port in configured_ports(config):
        if is_taken(port):
            who = holder(port.port)
            problems.append(f"port {port.port} ({port.setting}) is taken"
                            + (f" by {who}" if who else ""))
    if not problems:
        return None
    return (f"{'; '.join(problems)}: stop what holds it (`make stop` if it is this project's "
            f"TorchServe) or change the port in {config}")
