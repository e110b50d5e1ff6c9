"""pyproject.toml's ranges, the hash locks made from them, the wheel, `make install`'s Python
check and the `news-cnn` command agree with each other."""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from client import news_cnn
from serving.properties import REPO_ROOT
from tests.helpers.cli import commands_of, options_of
from tests.helpers.scripts import load_script
from tests.helpers.wheel import build_wheel

LOCKS = REPO_ROOT / "requirements"


def pyproject_list(key: str) -> list[Requirement]:
    """The requirements of a `key = [...]` array in pyproject.toml (tomllib is 3.11+ only)."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(rf"^{re.escape(key)} = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert match, key
    return [Requirement(r) for r in re.findall(r'^\s*"([^"]+)",', match.group(1), re.MULTILINE)]


def locked(name: str, path: Path | None = None) -> dict[str, tuple[str, int]]:
    """requirements/<name>.txt (or the lock at `path`) as canonical name -> (version, number of
    hashes)."""
    found: dict[str, tuple[str, int]] = {}
    current = None
    for line in (path or LOCKS / f"{name}.txt").read_text().splitlines():
        entry = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if entry:
            current = canonicalize_name(entry.group(1))
            found[current] = (entry.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


DEPENDENCIES = {"serving": pyproject_list("dependencies"),
                "dev": pyproject_list("dependencies") + pyproject_list("train") + pyproject_list("dev")}


@pytest.mark.parametrize("lock", sorted(DEPENDENCIES))
def test_each_lock_holds_every_declared_dependency_in_range_and_every_entry_hashed(lock):
    entries = locked(lock)
    assert entries and all(hashes for _, hashes in entries.values())  # pip --require-hashes needs them
    for requirement in DEPENDENCIES[lock]:
        version, _ = entries[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def test_the_serving_lock_is_the_dev_locks_versions_without_training_or_dev_tools():
    serving, dev = locked("serving"), locked("dev")
    assert {name: v for name, (v, _) in serving.items()} == {name: dev[name][0] for name in serving}
    extras = {canonicalize_name(r.name) for r in pyproject_list("train") + pyproject_list("dev")}
    assert not extras & set(serving)
    assert {"torch", "torchserve", "numpy"} <= set(serving) and not {"pandas", "scipy"} & set(serving)


def test_the_peers_lock_is_hashed_holds_its_pins_and_keeps_the_dev_locks_versions():
    # make bench-peers installs it with --require-hashes --no-deps into the dev environment.
    peers, dev = locked("peers", REPO_ROOT / "bench" / "requirements-peers.txt"), locked("dev")
    assert peers and all(hashes for _, hashes in peers.values())
    for line in (REPO_ROOT / "bench" / "requirements-peers.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin = Requirement(line)
            assert peers[canonicalize_name(pin.name)][0] == str(pin.specifier).removeprefix("=="), pin
    assert {name: v for name, (v, _) in peers.items() if name in dev} == {
        name: dev[name][0] for name in peers if name in dev}
    recipe = re.search(r"^\$\(VENV\)/\.peers-installed:.*(?:\n\t.*)*", (REPO_ROOT / "Makefile").read_text(),
                       re.MULTILINE).group(0)
    assert "--require-hashes" in recipe and "--no-deps" in recipe


def test_make_install_takes_exactly_the_locked_files():
    text = (REPO_ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*(?:\n\t.*)*", text, re.MULTILINE).group(0)
    install = next(line for line in recipe.splitlines() if "-r requirements/dev.txt" in line)
    assert "--require-hashes" in install and "--no-deps" in install
    assert "--upgrade" not in recipe  # pip itself comes from the lock


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The project's wheel, built offline from a copy of the checkout (no build/ left here)."""
    return zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel")))


def test_the_wheel_ships_the_product_only(wheel):
    top = {name.split("/", 1)[0] for name in wheel.namelist()}
    top = {name for name in top if not name.endswith(".dist-info")}
    assert top == {"model", "training", "handler", "serving", "client"}
    assert {"handler/model-config.yaml", "serving/metrics.yaml"} <= set(wheel.namelist())


def test_the_wheel_declares_ranges_and_the_news_cnn_command(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [Requirement(line.split(":", 1)[1]) for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    assert requires and all(not any(s.operator == "==" for s in r.specifier) for r in requires)
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    target = re.search(r"^news-cnn = (\S+):(\S+)$", wheel.read(entry_points).decode(), re.MULTILINE)
    assert getattr(importlib.import_module(target.group(1)), target.group(2)) is news_cnn.main


def requires_python() -> SpecifierSet:
    """pyproject.toml's requires-python as pip reads it."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    return SpecifierSet(re.search(r'^requires-python = "([^"]+)"', text, re.MULTILINE).group(1))


MINORS = [(3, minor) for minor in range(8, 15)]


@pytest.mark.parametrize("version", MINORS, ids=[f"3.{minor}" for _, minor in MINORS])
def test_make_install_accepts_what_requires_python_allows_and_refuses_the_rest_in_one_line(version, capsys):
    """scripts/check_python.py reads requires-python itself (it must run on any Python, without
    `packaging`): it accepts exactly the versions pip would, and names the supported ones."""
    check = load_script("check_python")
    allowed = requires_python()
    supported = [f"{major}.{minor}" for major, minor in MINORS if allowed.contains(f"{major}.{minor}")]
    accepted = f"{version[0]}.{version[1]}" in supported
    assert check.main([str(REPO_ROOT / "pyproject.toml")], here=version) == (0 if accepted else 1)
    err = capsys.readouterr().err
    if accepted:
        assert err == ""
    else:
        assert f"Python {version[0]}.{version[1]}" in err and f"{supported[0]} to {supported[-1]}" in err
        assert f"make install PYTHON=python{supported[-1]}" in err and len(err.strip().splitlines()) == 1


def test_news_cnn_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        news_cnn.main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for command in ("predict", "explain", "scale", "describe", "status", "ready", "keys"):
        assert re.search(rf"^\s+{command}\s", listed, re.MULTILINE), command


def test_news_cnn_has_every_server_command_with_its_own_options():
    from serving import __main__ as serving_cli

    served, ours = commands_of(serving_cli.build_parser()), commands_of(news_cnn.build_parser())
    assert served and all(options_of(ours[name]) == options_of(command)
                          for name, command in served.items())


def test_server_commands_are_carried_out_by_serving(monkeypatch):
    seen = []
    monkeypatch.setattr("serving.__main__.run", lambda args: seen.append(args) or 7)
    assert news_cnn.main(["status", "--workdir", "/somewhere"]) == 7
    assert (seen[0].command, seen[0].workdir) == ("status", "/somewhere")


def test_client_commands_are_carried_out_by_the_client(monkeypatch):
    seen = []
    monkeypatch.setattr("client.commands.execute", lambda args: seen.append(args) or 3)
    assert news_cnn.main(["--timeout", "5", "predict", "Oil rises", "Stocks fall"]) == 3
    assert seen[0].command == "predict" and seen[0].texts == ["Oil rises", "Stocks fall"]
    assert seen[0].timeout == 5.0


def test_a_server_command_after_client_options_is_a_one_line_error(capsys):
    assert news_cnn.main(["--timeout", "5", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: status takes no client options (--timeout)") and len(err.splitlines()) == 1


def test_png_without_matplotlib_is_a_message_not_a_traceback(monkeypatch, capsys):
    """Without matplotlib (e.g. the system Python), `explain --png` is a message, not `No
    module named 'matplotlib'`."""
    from client import commands

    class FakeClient:
        def explain(self, texts):
            return [{"label": "Sports"}]

    monkeypatch.setattr(commands.NewsClient, "local", lambda *a, **k: FakeClient())
    monkeypatch.setitem(sys.modules, "client.plots", None)  # import fails as without matplotlib
    assert news_cnn.main(["explain", "Oil rises", "--png", "x.png"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --png needs") and "Traceback" not in err


def test_make_install_names_the_python_the_lock_was_made_for(capsys):
    check = load_script("check_python")
    lock = LOCKS / "dev.txt"
    made_with = check.locked_for(lock.read_text())
    assert made_with is not None
    assert check.main([str(REPO_ROOT / "pyproject.toml"), str(lock)], here=made_with) == 0
    other = (3, 12) if made_with != (3, 12) else (3, 10)
    assert check.main([str(REPO_ROOT / "pyproject.toml"), str(lock)], here=other) == 1
    err = capsys.readouterr().err
    assert f"locked for Python {made_with[0]}.{made_with[1]}" in err and len(err.strip().splitlines()) == 1
