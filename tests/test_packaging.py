"""pyproject.toml, the requirements files, `make install`'s Python check and the `news-cnn`
command agree with each other."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from client import console

REPO = Path(__file__).resolve().parent.parent


def load_script(name: str):
    """A module of scripts/ (plain scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def pyproject_list(key: str) -> list[str]:
    """The strings of a `key = [...]` array in pyproject.toml (tomllib is 3.11+ only)."""
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(rf"^{re.escape(key)} = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert match, key
    return re.findall(r'"([^"]+)"', match.group(1))


def test_pyproject_dependencies_are_the_pinned_requirements():
    assert pyproject_list("dependencies") == pins(REPO / "requirements.txt")
    assert pyproject_list("dev") == pins(REPO / "requirements-dev.txt")


def test_dev_tools_stay_out_of_the_serving_requirements():
    serving = {p.split("==")[0] for p in pins(REPO / "requirements.txt")}
    assert not serving & {"pytest", "ruff", "py-spy"}


def test_the_python_check_reads_the_range_pyproject_declares():
    check = load_script("check_python")
    text = (REPO / "pyproject.toml").read_text()
    assert check.supported_range(text) == ((3, 10), (3, 13))


@pytest.mark.parametrize("version, accepted", [((3, 9), False), ((3, 10), True), ((3, 12), True),
                                                ((3, 13), False)])
def test_make_install_refuses_pythons_without_wheels_with_one_message(version, accepted, capsys):
    check = load_script("check_python")
    assert check.main([str(REPO / "pyproject.toml")], here=version) == (0 if accepted else 1)
    err = capsys.readouterr().err
    if accepted:
        assert err == ""
    else:
        assert f"Python {version[0]}.{version[1]}" in err and "3.10 to 3.12" in err
        assert "make install PYTHON=python3.12" in err and len(err.strip().splitlines()) == 1


def test_the_console_script_points_at_the_dispatcher():
    text = (REPO / "pyproject.toml").read_text()
    assert 'news-cnn = "client.console:main"' in text


def test_news_cnn_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        console.main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for command in ("predict", "explain", "scale", "describe", "status", "ready", "keys"):
        assert re.search(rf"^\s+{command}\s", listed, re.MULTILINE), command


def test_server_commands_are_handed_to_serving(monkeypatch):
    seen = []
    monkeypatch.setattr("serving.__main__.main", lambda argv: seen.append(argv) or 7)
    assert console.main(["status", "--workdir", "/somewhere"]) == 7
    assert seen == [["status", "--workdir", "/somewhere"]]


def test_client_commands_are_handed_to_the_client(monkeypatch):
    seen = []
    monkeypatch.setattr("client.__main__.execute", lambda args: seen.append(args) or 3)
    assert console.main(["--timeout", "5", "predict", "Oil rises", "Stocks fall"]) == 3
    assert seen[0].command == "predict" and seen[0].texts == ["Oil rises", "Stocks fall"]
    assert seen[0].timeout == 5.0


def test_a_server_command_after_client_options_is_a_one_line_error(capsys):
    assert console.main(["--timeout", "5", "status"]) == 2
    assert "status takes no client options" in capsys.readouterr().err


def test_png_without_matplotlib_is_a_message_not_a_traceback(monkeypatch, capsys):
    """With the system Python, `explain --png` used to die on `No module named 'matplotlib'`."""
    from client import __main__ as client_cli

    class FakeClient:
        def explain(self, texts):
            return [{"label": "Sports"}]

    monkeypatch.setattr(client_cli.NewsClient, "from_config", lambda *a, **k: FakeClient())
    monkeypatch.setitem(sys.modules, "client.plots", None)  # import fails as without matplotlib
    assert client_cli.main(["explain", "Oil rises", "--png", "x.png"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --png needs") and "Traceback" not in err
