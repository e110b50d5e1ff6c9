"""`news-cnn explain --file --html` rendered by a real headless Chromium: the class filter and
the sort run, and the colours are on screen. Skipped without a chromium binary on PATH."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from client.report import write_report
from tests.helpers.report_page import HEADLINES, Page, explain_headlines

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# The flags Chromium needs here: no sandbox as root, no GPU, nothing fetched or synced.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def explained(tiny_artifacts, tmp_path_factory) -> list:
    return explain_headlines(tiny_artifacts, tmp_path_factory.mktemp("report"))


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    result = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_chromium_runs_the_filter_and_sort_and_draws_the_colours(explained, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    report = tmp_path / "report.html"
    write_report(explained, report, "in.csv")
    labels = [o.answer["label"] for _, o in explained if o.answer and o.answer.get("label")]
    chosen = max(set(labels), key=labels.count)
    dom = chromium(tmp_path, "--dump-dom", f"{report.as_uri()}#class={chosen}&sort=asc").stdout
    page = Page(dom)
    visible = [a for a in page.articles if "hidden" not in a]
    assert {a["data-label"] for a in visible} == {chosen} and len(visible) == labels.count(chosen)
    confidences = [float(a["data-confidence"]) for a in visible]
    assert confidences == sorted(confidences)
    assert f"showing {len(visible)} of {len(HEADLINES)}" in dom

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    pixels = (imread(shot)[..., :3] * 255).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    greenish = (green > red + 30) & (green > blue + 15)
    reddish = (red > green + 40) & (red > blue + 40)
    # Both colours cover real areas (word backgrounds, legend), not a stray pixel or two.
    assert greenish.sum() > 300 and reddish.sum() > 300, (greenish.sum(), reddish.sum())
    assert np.mean(pixels) > 200  # a light page with dark text, not a blank or error screen
