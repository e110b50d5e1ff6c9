"""`python -m bench.batch_speed`: `news-cnn predict --file` end to end against the in-process
Predictor and the machine's limit on the same file, in one run (docs/batch.md#speed).

The file is the first `--rows` headlines of `--data`, repeated as often as needed. Each round
times: served (the command against a TorchServe started here, with the CPU seconds of frontend,
workers and command), archive (`--archive`, with its peak memory), limit (the Predictor in one
process per core, 1 torch thread, from all loaded to the last one's end) and predictor (in this
process, chunked and whole-file, on 1 torch thread and on torch's default; last, because a
torch that has just run on 2 threads keeps them spinning for a while). Prints JSON.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import suppress
from multiprocessing import get_context
from pathlib import Path

import psutil

from bench import served_models
from bench.harness import loadavg, machine, temp_root
from serving import cli
from serving.archive import read_model_config
from serving.offline_pool import OFFLINE_MAX_TEXTS
from serving.polling import wait_for
from serving.properties import MODEL_NAME, REPO_ROOT
from training.config import available_cores

DEFAULT_ROWS = 7600


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        return next(reader), list(reader)


def write_rows(data: Path, dest: Path, rows: int) -> int:
    """`rows` rows of `data` (all its columns) to `dest`, from its top again as often as it
    takes; returns how many (fewer only when `data` has none)."""
    header, body = _read_csv(data)
    taken = [body[i % len(body)] for i in range(rows)] if body else []
    with open(dest, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([header, *taken])
    return len(taken)


def split_rows(source: Path, parts: int, root: Path) -> list[Path]:
    """`source` cut into `parts` CSV files of consecutive rows, each with the header."""
    header, body = _read_csv(source)
    size = -(-len(body) // parts)
    paths = []
    for index in range(parts):
        path = root / f"part-{index}.csv"
        with open(path, "w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([header] + body[index * size:(index + 1) * size])
        paths.append(path)
    return paths


def _limit_worker(artifacts: Path, source: Path, dest: Path, chunk: int, ready, go, done) -> None:
    """One process of the limit: load, say so, wait for the start, score its share."""
    import torch

    from model.predictor import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.from_dir(artifacts)
    ready.put(os.getpid())
    go.wait()
    done.put(predictor_seconds(predictor, source, dest, chunk))


def limit_seconds(artifacts: Path, parts: list[Path], root: Path, chunk: int) -> float:
    """Wall seconds for one spawned process per part to score it, from the moment every
    process has loaded the model to the end of the last one."""
    context = get_context("spawn")
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    processes = [context.Process(target=_limit_worker, daemon=True,
                                 args=(artifacts, part, root / f"limit-{part.name}", chunk, ready, go, done))
                 for part in parts]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=600)
        start = time.perf_counter()
        go.set()
        for _ in processes:
            done.get(timeout=600)
        return time.perf_counter() - start
    finally:
        for process in processes:
            process.join(timeout=30)


def _news_cnn(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `news-cnn ARGS` from this checkout."""
    return [sys.executable, "-m", "client.news_cnn", *args], {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def peak_rss_command(args: list[str]) -> tuple[float, str, float]:
    """Run `news-cnn ARGS`, sampling the memory of it and its child processes every 50 ms;
    (wall seconds, last stderr line, peak of their summed RSS in MiB)."""
    argv, env = _news_cnn(args)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = psutil.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        peak = 0

        def sample_until_exit() -> bool:
            nonlocal peak
            with suppress(psutil.Error):  # a process ended between listing and reading
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            return process.poll() is not None
        wait_for(sample_until_exit, math.inf, f"news-cnn {' '.join(args)}")
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().strip()
    if process.returncode != 0:
        raise RuntimeError(f"news-cnn {' '.join(args)} failed: {stderr}")
    return seconds, stderr.splitlines()[-1], round(peak / 2**20, 1)


def predictor_seconds(predictor, source: Path, dest: Path, chunk: int | None) -> float:
    """Read `source`, classify its titles `chunk` at a time (None: all at once), write CSV."""
    start = time.perf_counter()
    with open(source, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    titles = [r["title"] for r in rows]
    size = chunk or len(titles)
    answers = [a for i in range(0, len(titles), size) for a in predictor.predict(titles[i:i + size])]
    with open(dest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for row, answer in zip(rows, answers, strict=True):
            label = answer["label"]
            writer.writerow([*row.values(), label, answer["probabilities"][label] if label else ""])
    return time.perf_counter() - start


def command_seconds(args: list[str]) -> tuple[float, str]:
    """Run `news-cnn ARGS`; (wall seconds, its last stderr line). Fails loudly on an error."""
    argv, env = _news_cnn(args)
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"news-cnn {' '.join(args)} failed: {result.stderr.strip()}")
    return seconds, result.stderr.strip().splitlines()[-1]


def children_cpu_seconds() -> float:
    """CPU seconds of this process's finished children (the commands run so far)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(mar: Path, artifacts: Path, data: Path, rows: int, rounds: int) -> dict:
    """Every timing, `rounds` times, in one TorchServe's lifetime."""
    import torch

    from model.predictor import Predictor

    started = machine()  # the load average before the run
    with temp_root("bench-batch-") as root:
        source = root / "headlines.csv"
        count = write_rows(data, source, rows)
        model_config = read_model_config(mar)
        max_texts, workers = int(model_config["handler"]["max_texts"]), int(model_config.get("minWorkers", 1))
        predictor = Predictor.from_dir(artifacts)
        store = root / "store"
        store.mkdir()
        (store / f"{MODEL_NAME}.mar").symlink_to(mar.resolve())
        thread_counts = sorted({1, torch.get_num_threads()})
        parts = split_rows(source, available_cores(), root)
        peak_rss: list[float] = []
        times: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)  # CPU seconds of each served run, by process
        lines: dict[str, str] = {}
        with served_models.start(root / "ts", store, {MODEL_NAME: f"{MODEL_NAME}.mar"}, workers) as ts:
            procs = {"frontend": psutil.Process(ts.pid()),
                     **{f"worker {p.pid}": p for p in served_models.worker_processes(ts)}}
            client = ["--config", str(ts.config), "--key-file", str(ts.key_file)]
            for _ in range(rounds):
                # The commands first: a torch that has just run on 2 threads keeps them
                # spinning for a while, taking CPU from whatever runs next on 2 cores.
                before, command_before = served_models.cpu_seconds(procs), children_cpu_seconds()
                seconds, lines["served"] = command_seconds(
                    client + ["predict", "--file", str(source), "--out", str(root / "served.csv"), "--force"])
                times["served"].append(seconds)
                after = served_models.cpu_seconds(procs)
                cpu["frontend"].append(after["frontend"] - before["frontend"])
                cpu["workers"].append(sum(after[n] - before[n] for n in procs if n != "frontend"))
                cpu["command"].append(children_cpu_seconds() - command_before)
                seconds, lines["archive"], peak = peak_rss_command(
                    ["predict", "--archive", str(mar), "--file", str(source),
                     "--out", str(root / "archive.csv"), "--force"])
                times["archive"].append(seconds)
                peak_rss.append(peak)
                times["limit"].append(limit_seconds(artifacts, parts, root, OFFLINE_MAX_TEXTS))
                for threads in thread_counts:
                    torch.set_num_threads(threads)
                    for name, chunk in (("chunked", max_texts), ("whole_file", None)):
                        times[f"predictor_{name}_{threads}_threads"].append(
                            predictor_seconds(predictor, source, root / "p.csv", chunk))
    rates = {name: round(count / statistics.median(values)) for name, values in times.items()}

    def best(kind: str) -> int:
        return max(rate for name, rate in rates.items() if name.startswith(f"predictor_{kind}_"))

    return {"machine": started, "loadavg_end": loadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "rows": count, "data": str(data), "rounds": rounds, "max_texts": max_texts, "workers": workers,
            "limit_processes": len(parts), "archive_peak_rss_mib": peak_rss,
            "headlines_per_s": rates,
            "seconds": {name: [round(s, 3) for s in values] for name, values in times.items()},
            "served_cpu_seconds": {name: [round(s, 3) for s in values] for name, values in cpu.items()},
            "served_over_best_predictor_chunked": round(rates["served"] / best("chunked"), 2),
            "served_over_best_predictor_whole_file": round(rates["served"] / best("whole_file"), 2),
            "archive_over_limit": round(rates["archive"] / rates["limit"], 2),
            "served_over_limit": round(rates["served"] / rates["limit"], 2),
            "command_summaries": lines}


def build_parser() -> argparse.ArgumentParser:
    """The batch benchmark's options."""
    parser = cli.command_line("python -m bench.batch_speed",
                              "news-cnn predict --file end to end (served and --archive) against the\n"
                              "in-process Predictor on the same file, in one run; prints JSON.")
    parser.add_argument("--mar", type=Path, default=Path("model_store") / f"{MODEL_NAME}.mar",
                        help="the archive to serve")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"),
                        help="the training run it came from (the in-process Predictor)")
    parser.add_argument("--data", type=Path, required=True, help="a CSV with a title column")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="headlines in the file")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, measure, print JSON."""
    args = build_parser().parse_args(argv)
    print(json.dumps(measure(args.mar, args.artifacts, args.data, args.rows, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
