"""A port TorchServe needs but cannot have is named before it starts, with who holds it."""
from __future__ import annotations

import os
import socket

import pytest

from serving.ports import configured_ports, taken_ports_message
from serving.properties import Endpoints, write_properties
from serving.server import ServerError, TorchServe, free_ports


@pytest.fixture
def listener():
    """A socket of this test process listening on a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def write_config(tmp_path, inference: int, health: int | None = None):
    management, metrics, free_health, grpc_inference, grpc_management = free_ports(5)
    endpoints = Endpoints.on_ports(inference, management, metrics, health or free_health)
    return write_properties(tmp_path / "config.properties", **endpoints.as_properties(),
                            grpc_inference_address="127.0.0.1", grpc_inference_port=grpc_inference,
                            grpc_management_address="127.0.0.1", grpc_management_port=grpc_management)


def test_every_address_torchserve_opens_is_checked(tmp_path):
    config = write_config(tmp_path, 18999)
    settings = {p.setting: p.port for p in configured_ports(config)}
    assert set(settings) == {"inference_address", "management_address", "metrics_address",
                             "health_address", "grpc_inference_port", "grpc_management_port"}
    assert settings["inference_address"] == 18999


def test_free_ports_give_no_message(tmp_path):
    assert taken_ports_message(write_config(tmp_path, free_ports(1)[0])) is None


def test_a_taken_port_is_named_with_its_setting_and_holder(tmp_path, listener):
    message = taken_ports_message(write_config(tmp_path, listener))
    assert f"port {listener} (inference_address) is taken" in message
    assert f"pid {os.getpid()}" in message  # this process holds it
    assert "make stop" in message


def test_start_refuses_before_launching_anything(tmp_path, listener):
    server = TorchServe(tmp_path, write_config(tmp_path, listener))
    with pytest.raises(ServerError, match=f"port {listener} \\(inference_address\\) is taken"):
        server.start()
    assert not (tmp_path / "logs").exists()  # torchserve was never launched


def test_a_taken_health_port_is_named_before_torchserve_starts(tmp_path, listener):
    config = write_config(tmp_path, free_ports(1)[0], health=listener)
    message = taken_ports_message(config)
    assert f"port {listener} (health_address) is taken by pid {os.getpid()}" in message
    server = TorchServe(tmp_path, config)
    with pytest.raises(ServerError, match=f"port {listener} \\(health_address\\) is taken"):
        server.start()
    assert not (tmp_path / "logs").exists()  # torchserve was never launched
