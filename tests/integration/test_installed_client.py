"""`news-cnn` as a user installs it away from the checkout: the wheel in a fresh environment
built from requirements/serving.txt alone (as the image has it), run on a pseudo-terminal
(progress bars draw only there) against the real handler behind a fake TorchServe."""
from __future__ import annotations

import csv
import errno
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.offline import OfflineModel
from serving.properties import REPO_ROOT
from tests.helpers import handler_http
from tests.helpers.tiny_artifacts import MIXED_HEADLINES
from tests.helpers.wheel import build_wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv holding the serving lock and the wheel, nothing else."""
    workdir = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(workdir)
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
    for args in (["--require-hashes", "-r", str(REPO_ROOT / "requirements" / "serving.txt")], [str(wheel)]):
        result = subprocess.run(pip + args, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr
    return venv / "bin"


def on_terminal(argv: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as stdin, stdout and stderr; (exit status, output)."""
    main, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NEWS_CNN_"))}
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(main, 65536)
            except OSError as err:  # EIO: the program closed the terminal
                if err.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            output += chunk
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), output.decode(errors="replace")
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()


def test_every_client_command_works_on_a_terminal_in_a_serving_only_install(installed, tiny_artifacts,
                                                                            tmp_path):
    source = tmp_path / "in.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["title"]] + [[h] for h in MIXED_HEADLINES * 30])
    news_cnn = str(installed / "news-cnn")
    with OfflineModel(tiny_artifacts) as model, handler_http.serve(model) as (client, _):
        server = [news_cnn, "--url", client.url, "--token", "k", "--management-url", client.url]
        code, output = on_terminal(server + ["predict", "--file", str(source), "--out", "out.csv"], tmp_path)
        assert code == 0 and "Traceback" not in output, output
        assert "row" in output  # the progress bar drew on the terminal
        with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
            assert len(list(csv.DictReader(f))) == len(MIXED_HEADLINES) * 30
        code, output = on_terminal(server + ["explain", "--file", str(source), "--html", "page.html"],
                                   tmp_path)
        assert code == 0 and (tmp_path / "page.html").stat().st_size > 0, output
        code, output = on_terminal(server + ["explain", "Oil prices rise", "--png", "oil.png"], tmp_path)
        assert code == 0 and (tmp_path / "oil.png").stat().st_size > 0, output
        code, output = on_terminal(server + ["describe"], tmp_path)
        assert code == 0 and "customizedMetadata" in output, output
    code, output = on_terminal([news_cnn, "predict", "--archive", str(tiny_artifacts), "--file", str(source),
                                "--out", "offline.csv"], tmp_path)
    assert code == 0 and (tmp_path / "offline.csv").stat().st_size > 0, output
    code, output = on_terminal([news_cnn, "predict", "Oil prices rise"], tmp_path)
    assert code == 1 and "--url" in output and "NEWS_CNN_URL" in output, output
    assert "site-packages" not in output and len(output.strip().splitlines()) == 1, output
