"""Where the time goes under load: while wrk drives one endpoint, py-spy samples one worker
(handler, TorchServe's worker loop, metrics) and the CPU seconds of the Java frontend and each
worker are counted, which shows which of them saturates the cores.
"""
from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from bench import archives, headlines, load, served_models
from bench.harness import temp_root
from serving.archive import read_model_config
from serving.properties import MODEL_NAME


def summarize_collapsed(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed ("raw") output."""
    self_counts: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        self_counts[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "py-spy collected no samples\n"
    lines = [f"{total} samples"]
    for kind, counts in (("self", self_counts), ("inclusive", inclusive)):
        lines += ["", f"{kind} % | function (file:line)"]
        lines += [f"{100 * n / total:6.1f} | {f}" for f, n in counts.most_common(top)]
    return "\n".join(lines) + "\n"


def run(mar: Path, config: Path, data: Path | None, seconds: float = 10.0,
        concurrency: int = 16, path: str = f"/predictions/{MODEL_NAME}") -> str:
    """Profile `path` under wrk load; returns a text report."""
    beside = Path(sys.executable).with_name("py-spy")
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy is missing: run make install (it is in requirements/dev.txt)")
    bodies = headlines.json_bodies(headlines.load(data))
    model_config = read_model_config(mar)
    workers = int(model_config.get("minWorkers", 1))
    model = path.rstrip("/").split("/")[-1]
    report = []
    with temp_root("profile-") as root:
        archives.copy_into(mar, root / "store")
        # The echo floor rides along so that `--path /predictions/echo` profiles TorchServe alone.
        archives.build_echo(root / "store", {k: v for k, v in model_config.items() if k != "handler"})
        with served_models.start(root / "server", root / "store", {MODEL_NAME: mar.name, "echo": "echo.mar"},
                                 workers, base=config) as ts:
            target = served_models.target(ts, path)
            load.run_wrk(target.url, bodies, concurrency, 2, 10**6, target.auth())  # warm-up
            procs = {"java frontend": psutil.Process(ts.pid())}
            for i, p in enumerate(served_models.worker_processes(ts, model)):
                procs[f"worker {i} (pid {p.pid})"] = p
            collapsed = root / "worker.txt"
            victim = next(p for name, p in procs.items() if name.startswith("worker"))
            with ThreadPoolExecutor(1) as pool:
                before = served_models.cpu_seconds(procs)
                wall = time.monotonic()
                loading = pool.submit(load.run_wrk, target.url, bodies, concurrency, seconds + 1, 10**7,
                                      target.auth())
                time.sleep(0.5)
                spy = subprocess.run([py_spy, "record", "--pid", str(victim.pid), "--duration",
                                      str(int(seconds)), "--rate", "250", "--format", "raw",
                                      "--nonblocking", "--output", str(collapsed)],
                                     capture_output=True, text=True, timeout=seconds + 60)
                result = loading.result()
            wall = time.monotonic() - wall
            after = served_models.cpu_seconds(procs)
            report.append(f"{path} at concurrency {concurrency}: {result.rps:.0f} req/s, p50 "
                          f"{result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, statuses {result.statuses}")
            report.append(f"CPU seconds over {wall:.1f} s of wall time ({psutil.cpu_count()} cores):")
            for name in procs:
                used = after[name] - before[name]
                report.append(f"  {name:<28} {used:6.2f} CPU s ({100 * used / wall:5.1f} % of one core, "
                              f"{1e6 * used / max(result.requests, 1):6.0f} CPU us per request)")
            report.append("")
            if spy.returncode != 0 or not collapsed.exists():
                report.append(f"py-spy failed ({spy.returncode}): {spy.stderr.strip()[:500]}")
            else:
                report.append(f"py-spy on {victim.pid} ({int(seconds)} s at 250 Hz):")
                report.append(summarize_collapsed(collapsed))
    return "\n".join(report) + "\n"
