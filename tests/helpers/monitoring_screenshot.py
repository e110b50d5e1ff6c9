"""Draw docs/monitoring.png: Prometheus' graph of the label shares (`news:label_share:ratio_rate5m`)
under traffic, in a headless Chromium. A real TorchServe serves the trained artifacts, a real
Prometheus (the shipped configuration and rules) scrapes it every second; headlines of the
given file are sent mixed, then only those of one category (a drifted feed).

    python -m tests.helpers.monitoring_screenshot --artifacts artifacts --data artifacts/test.csv \
        --out docs/monitoring.png
"""
from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import requests

from serving import cli
from tests.helpers.prometheus import running_prometheus
from tests.helpers.torchserve import served_archive
from tests.integration.test_report_browser import CHROMIUM_FLAGS, find_chromium

EXPR = "news:label_share:ratio_rate5m"


def send(ts, titles: list[str], seconds: float, per_request: int = 5, seed: int = 0) -> int:
    """Send random `titles`, `per_request` a request, one request after the other, for `seconds`."""
    rng = random.Random(seed)
    headers, sent, end = ts.keys().headers("inference"), 0, time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < end:
            texts = rng.sample(titles, per_request)
            answer = session.post(f"{ts.endpoints.inference}/predictions/news_cnn", json={"texts": texts},
                                  headers=headers, timeout=30)
            answer.raise_for_status()
            sent += per_request
            time.sleep(0.1)
    return sent


def screenshot(url: str, out: Path, workdir: Path, size: str = "1400,1080") -> None:
    """Prometheus' graph page of EXPR over the last 5 minutes, with its legend, drawn by Chromium."""
    binary = find_chromium()
    if binary is None:
        raise SystemExit("no chromium binary: apt-get install chromium")
    # Debian's build serves the classic UI (/graph redirects to /classic/graph, dropping the query).
    graph = requests.get(f"{url}/graph/", timeout=10).url.split("?")[0]
    page = f"{graph}?" + urlencode({"g0.expr": EXPR, "g0.tab": "0", "g0.range_input": "5m"})
    subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium'}",
                    f"--screenshot={out.resolve()}", f"--window-size={size}", "--hide-scrollbars",
                    "--virtual-time-budget=15000", page], check=True, capture_output=True, timeout=180)


def build_parser() -> argparse.ArgumentParser:
    """The screenshot's options."""
    parser = cli.command_line("python -m tests.helpers.monitoring_screenshot", __doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="a training run's artifacts")
    parser.add_argument("--data", type=Path, required=True, help="a title,category CSV")
    parser.add_argument("--out", type=Path, default=Path("docs/monitoring.png"), help="the PNG to write")
    parser.add_argument("--category", default="Sports", help="the only category of the drifted phase")
    parser.add_argument("--mixed-s", type=float, default=150, help="seconds of traffic of every category")
    parser.add_argument("--drifted-s", type=float, default=120, help="seconds of --category's traffic only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve the archive, send mixed then drifted traffic, screenshot Prometheus's graph."""
    args = build_parser().parse_args(argv)
    with args.data.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    titles = [r["title"] for r in rows]
    drifted = [r["title"] for r in rows if r["category"] == args.category]
    with tempfile.TemporaryDirectory(prefix="monitoring-screenshot-") as tmp:
        workdir = Path(tmp)
        with served_archive(args.artifacts, workdir / "torchserve") as ts, \
                running_prometheus(ts.endpoints.metrics, workdir / "prometheus") as url:
            time.sleep(3)  # a first scrape of the zeros
            mixed = send(ts, titles, args.mixed_s)
            only = send(ts, drifted, args.drifted_s)
            time.sleep(3)
            print(f"sent {mixed} mixed headlines, then {only} {args.category} ones; Prometheus at {url}")
            screenshot(url, args.out, workdir)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
