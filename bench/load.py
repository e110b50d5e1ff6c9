"""The load generator: `wrk` (C, event loop), which measures requests/s and latency without
becoming the bottleneck on two cores. It keeps no answers (the reliability suite checks them
with tests/helpers/checked_load.py). Load goes to loopback addresses only.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LUA_SCRIPT = Path(__file__).with_name("post.lua")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})  # urlsplit drops IPv6 brackets


@dataclass
class LoadResult:
    """What one load run measured."""

    concurrency: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    socket_errors: int = 0

    @property
    def ok(self) -> int:
        """Requests answered with a 2xx status."""
        return sum(n for code, n in self.statuses.items() if code.startswith("2"))


def require_loopback(url: str) -> None:
    """Refuse to send load anywhere but this machine."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load is only sent to loopback addresses, not {host!r}")


def wrk_path() -> str:
    """The wrk executable, or a RuntimeError saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: the benchmark needs it as its load generator. "
                           "Install it with 'sudo apt-get install -y wrk' (Debian/Ubuntu).")
    return path


def run_wrk(url: str, bodies: Sequence[str], concurrency: int, duration_s: float,
            max_requests: int, auth: str | None = None) -> LoadResult:
    """POST `bodies` in rotation to `url` from `concurrency` connections, for `duration_s` seconds
    or about `max_requests` answers; `auth` is the Authorization header's value ("Bearer KEY")."""
    require_loopback(url)
    if any("\n" in b for b in bodies):
        raise ValueError("wrk bodies are one per line: a body must not contain a newline")
    threads = max(1, min(2, concurrency))  # two cores: more wrk threads only steal CPU
    per_thread = max(1, -(-max_requests // threads))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(bodies) + "\n")
        bodies_file = f.name
    env = dict(os.environ, WRK_AUTH=auth or "", WRK_CONTENT_TYPE="application/json")
    cmd = [wrk_path(), "-t", str(threads), "-c", str(concurrency),
           "-d", f"{max(1, round(duration_s))}s", "--timeout", "30s",
           "-s", str(LUA_SCRIPT), url, "--", bodies_file, str(per_thread)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60)
    finally:
        os.unlink(bodies_file)
    line = next((out for out in proc.stdout.splitlines() if out.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    raw = json.loads(line[len("WRK_JSON "):])
    # From the first thread's start to the last answer: shorter than -d when the request
    # budget ran out first (wrk still waits out -d).
    duration = (raw.get("active_us") or raw["duration_us"]) / 1e6
    lat, errors = raw["latency_us"], raw["errors"]
    return LoadResult(
        concurrency=concurrency, requests=raw["requests"], duration_s=round(duration, 3),
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000, statuses={str(k): v for k, v in raw["statuses"].items()},
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"])
