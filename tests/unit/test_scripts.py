"""scripts/ that make runs with the system Python, before or without the virtual environment:
the Java check of `make install`, `make wrk` and `make clean` (its refusals run through make
in test_makefile.py)."""
from __future__ import annotations

import pytest

from tests.helpers.scripts import load_script

JAVA_17 = 'openjdk version "17.0.9" 2023-10-17\nOpenJDK Runtime Environment (build 17.0.9+9)\n'
JAVA_8 = 'openjdk version "1.8.0_392"\nOpenJDK Runtime Environment (build 1.8.0_392-b08)\n'
JAVA_21 = 'openjdk version "21" 2023-09-19\n'


@pytest.mark.parametrize("java, output, message", [
    (None, "", "Java 17+ is required by TorchServe: install it, e.g. 'sudo apt-get install -y "
               "openjdk-17-jre-headless'"),
    ("/usr/bin/java", JAVA_8, "Java 1.8.0_392 found; TorchServe needs 17+: sudo apt-get install -y "
                              "openjdk-17-jre-headless"),
    ("/usr/bin/java", JAVA_17, None),
    ("/usr/bin/java", JAVA_21, None),
], ids=["missing", "java 8", "java 17", "java 21"])
def test_java_below_17_or_missing_is_named_with_the_install_command(java, output, message):
    assert load_script("check_java").problem(java, output) == message


@pytest.fixture
def wrk(monkeypatch):
    """scripts/ensure_wrk.py with `which` and apt-get recorded instead of run."""
    module = load_script("ensure_wrk")
    calls = []
    monkeypatch.setattr(module, "apt_get", lambda *argv: calls.append(argv) or module.apt_ok.pop(0))
    module.calls, module.apt_ok = calls, []
    return module


def test_wrk_on_path_installs_nothing(wrk, monkeypatch):
    monkeypatch.setattr(wrk.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert wrk.main() == 0 and wrk.calls == []


def test_wrk_is_installed_as_root_after_an_update_when_the_first_try_fails(wrk, monkeypatch):
    monkeypatch.setattr(wrk.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setattr(wrk.os, "geteuid", lambda: 0)
    wrk.apt_ok = [False, True, True]
    assert wrk.main() == 0
    assert wrk.calls == [tuple(wrk.INSTALL), ("apt-get", "update"), tuple(wrk.INSTALL)]


def test_without_root_wrk_is_a_one_line_hint_and_exit_1(wrk, monkeypatch, capsys):
    monkeypatch.setattr(wrk.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setattr(wrk.os, "geteuid", lambda: 1000)
    assert wrk.main() == 1 and wrk.calls == []
    err = capsys.readouterr().err
    assert "sudo apt-get install -y wrk" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value, ok", [("artifacts", True), ("keep/inner", True), ("keep/", True),
                                       ("", False), ("/abs", False), (".", False), ("..", False),
                                       ("./keep", False), ("keep/../..", False), ("keep/.", False)])
def test_clean_takes_only_relative_paths_without_dot_parts(value, ok):
    assert (load_script("clean").refused("ARTIFACTS", value) is None) == ok
