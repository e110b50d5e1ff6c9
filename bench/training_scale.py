"""How training scales with the data: wall time, CPU time and peak memory at several sizes.

    python -m bench.training_scale --data news.csv --rows 10000 --note "quiet machine"

Each size is a CSV of that many rows, repeating the given one; on it, the training commands a
user meets (COMMANDS) each run in a fresh process, as the Makefile runs them. Writes
<out>/scale.json and scale.md (the table docs/training.md shows). Repeated rows fall into the
training and the test split alike, so the F1 of these runs means nothing: the table is about
time and memory only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.harness import machine, write
from serving import cli
from serving.polling import wait_for
from training.data import CATEGORY, TITLE, read_headlines
from training.errors import TrainingError
from training.timing import STEP_SECONDS

DEFAULT_ROWS = (10_000, 40_000, 120_000)
# The training commands timed, by the make target that runs them (`serve`: the
# artifacts/model.pt rule; `train`: every experiment).
COMMANDS = {"serve": ["--archived-only"], "train": []}
COMMAND_LABELS = {"serve": "`make serve` training step", "train": "`make train` (all experiments)"}
# How often the process tree's memory is sampled: short next to a run, cheap on the CPU.
SAMPLE_SECONDS = 0.2
STEPS_SHOWN = 12  # slowest steps listed under the table


class ScaleError(TrainingError):
    """An option the scale script cannot use; the message names it and the fix."""


@dataclass
class Run:
    """One timed training command at one size."""

    rows: int
    command: str  # a key of COMMANDS
    argv: list[str]
    wall_seconds: float
    # CPU time of the process tree (user + system): on a shared machine the wall time grows
    # with the others' load, this hardly does.
    cpu_seconds: float
    peak_memory_mb: float
    exit_code: int
    step_seconds: dict[str, float] = field(default_factory=dict)  # from the run's step_seconds.json
    error: str = ""  # the last lines of stderr when the run failed


def build_repeated_csv(source: str | Path, rows: int, target: str | Path) -> Path:
    """Write `rows` headlines to `target` as a `title,category` CSV, cycling through `source`
    (any format `python -m training` reads) from its first row, as often as needed."""
    if rows < 1:
        raise ScaleError(f"--rows {rows}: must be at least 1")
    frame = read_headlines(source)[[TITLE, CATEGORY]]
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.iloc[np.arange(rows) % len(frame)].to_csv(target, index=False)
    return target


def _proc_kib(path: str, field: str) -> int | None:
    """Bytes of a "Field:  N kB" line of a /proc file, or None when unreadable or absent."""
    with suppress(OSError), open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def process_tree_memory(pid: int) -> int:
    """Bytes of memory used by `pid` and all its descendants now (Linux /proc; 0 elsewhere): each
    one's proportional set size (a page shared by n processes, such as forked workers, counts
    1/n), or its resident size where PSS is not readable."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            used = _proc_kib(f"/proc/{current}/smaps_rollup", "Pss")
            if used is None:
                with open(f"/proc/{current}/statm") as f:
                    used = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            total += used
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo += [int(child) for child in f.read().split()]
        except (OSError, ValueError):
            continue  # the process ended between two reads, or there is no /proc
    return total


def measure(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float | None = None,
            cwd: str | Path | None = None) -> tuple[float, float, int, int, str]:
    """Run `argv`; returns (wall seconds, CPU seconds, peak memory bytes of its process tree,
    exit code, stderr tail). CPU seconds count the process and the children it waited for.

    The peak is the larger of the kernel's peak resident size for the process since it started
    the command (VmHWM, exact for one process) and the sampled sum over the tree (catches
    worker processes; shared pages counted once). Not wait4's ru_maxrss: it also counts this
    process's pages that the child held between fork and exec."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: the child never blocks on it
        process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                                   text=True)
        sampled = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                peak_resident = _proc_kib(f"/proc/{process.pid}/status", "VmHWM") or 0  # since exec
                sampled[0] = max(sampled[0], process_tree_memory(process.pid), peak_resident)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def reaped() -> tuple | None:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            return (status, usage) if pid else None
        killed = []
        try:
            status, usage = wait_for(reaped, math.inf if timeout is None else timeout, " ".join(argv))
        except TimeoutError:
            process.kill()
            _, status, usage = os.wait4(process.pid, 0)
            killed.append(f"killed after {timeout:.0f} s (--timeout)")
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        err.seek(0)
        tail = err.read().splitlines() + killed
    process.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    return wall, usage.ru_utime + usage.ru_stime, sampled[0], process.returncode, "\n".join(tail[-5:])


def training_argv(data: Path, out: Path, command: str, extra: Sequence[str] = ()) -> list[str]:
    """The `python -m training` command line that `command` ("serve" or "train") stands for."""
    return [sys.executable, "-m", "training", "--data", str(data), "--out", str(out),
            *COMMANDS[command], *extra]


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def markdown(runs: Sequence[Run], host: dict, note: str = "") -> str:
    """The scale table (one row per size and command) and the slowest steps of the largest run."""
    lines = [f"Measured on {host['cpu_model']}, {host['cores_usable']} cores usable, {host['date']}"
             + (f"; {note}" if note else "") + ".", "",
             "| rows | training command | wall (m:ss) | CPU time (m:ss) | peak memory (MB) | exit |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.rows:,} | {COMMAND_LABELS[r.command]} | {_minutes(r.wall_seconds)} "
                     f"| {_minutes(r.cpu_seconds)} | {r.peak_memory_mb:,.0f} | {r.exit_code} |")
    timed = [r for r in runs if r.step_seconds]
    if timed:
        largest = max(timed, key=lambda r: (r.rows, len(r.step_seconds)))
        total = largest.wall_seconds
        slowest = sorted(largest.step_seconds.items(), key=lambda kv: -kv[1])[:STEPS_SHOWN]
        lines += ["", (f"Where the time goes: {COMMAND_LABELS[largest.command]} at {largest.rows:,} rows "
                       f"(slowest steps, {_minutes(total)} wall in all; experiments that run side by side "
                       "overlap, so shares can add up to more than 100%)."), "",
                  "| step | seconds | share of wall |", "|---|---:|---:|"]
        lines += [f"| {name} | {s:.1f} | {s / total:.0%} |" for name, s in slowest]
    return "\n".join(lines) + "\n"


def run_all(data: Path, sizes: Sequence[int], commands: Sequence[str], out: Path,
            extra: Sequence[str] = (), timeout: float | None = None, note: str = "",
            checkout: Path | None = None) -> list[Run]:
    """Build each size's CSV, time each command on it, and rewrite the results after every run
    (an interrupted run still leaves the sizes it finished). `checkout` times another
    checkout's `python -m training` (e.g. the commit before a change) on the same data."""
    host = machine()
    runs: list[Run] = []
    out = out.resolve()  # absolute paths: the runs start in `root`, not here
    root = (checkout or Path(__file__).resolve().parents[1]).resolve()
    if not (root / "training" / "__main__.py").is_file():
        raise ScaleError(f"--checkout {root}: no training/__main__.py there; pass a checkout of this project")
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    for rows in sizes:
        csv = build_repeated_csv(data, rows, out / "data" / f"news_{rows}.csv")
        for command in commands:
            artifacts = out / "artifacts" / f"{command}_{rows}"
            argv = training_argv(csv, artifacts, command, extra)
            print(f"{rows:,} rows, {command}: {' '.join(argv[1:])}", flush=True)
            wall, cpu, peak, code, error = measure(argv, env=env, timeout=timeout, cwd=root)
            steps = artifacts / STEP_SECONDS  # each step's seconds, when the run wrote them
            run = Run(rows, command, argv[1:], round(wall, 1), round(cpu, 1), round(peak / 2**20, 1), code,
                      json.loads(steps.read_text()) if code == 0 and steps.is_file() else {},
                      error if code else "")
            print(f"  {_minutes(wall)} wall, {_minutes(cpu)} CPU, {run.peak_memory_mb:,.0f} MB peak, "
                  f"exit {code}" + (f"\n  {error}" if code else ""), flush=True)
            runs.append(run)
            write(out, "scale", {"machine": host, "note": note, "runs": [asdict(r) for r in runs]},
                  markdown(runs, host, note))
    return runs


def build_parser() -> argparse.ArgumentParser:
    """The scale script's options."""
    p = cli.command_line("python -m bench.training_scale", __doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="headlines CSV to repeat (e.g. the 10,000-row news.csv)")
    p.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="sizes to build and time")
    p.add_argument("--commands", nargs="+", choices=list(COMMANDS), default=list(COMMANDS),
                   help="serve: the make serve training step; train: make train")
    # Not under artifacts/: every training run replaces that directory whole.
    p.add_argument("--out", default="scale_runs", help="where the CSVs, runs and tables go")
    p.add_argument("--timeout", type=float, default=None, help="seconds before a run is killed")
    p.add_argument("--note", default="", help="said under the table, e.g. 'quiet machine'")
    p.add_argument("--checkout", default=None,
                   help="time the training code of another checkout of this project instead (before/after "
                        "figures); a checkout older than --archived-only needs --commands train")
    p.add_argument("--train-args", default="",
                   help="extra options for python -m training, e.g. '--threads 1'")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        if any(r < 1 for r in args.rows):
            raise ScaleError(f"--rows {' '.join(map(str, args.rows))}: every size must be at least 1")
        runs = run_all(Path(args.data), args.rows, args.commands, Path(args.out),
                       extra=args.train_args.split(), timeout=args.timeout, note=args.note,
                       checkout=Path(args.checkout) if args.checkout else None)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.USAGE
    print(f"\nwrote {Path(args.out) / 'scale.md'} and scale.json")
    return 0 if all(r.exit_code == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
