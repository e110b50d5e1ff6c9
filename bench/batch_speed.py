"""`python -m bench.batch_speed`: `news-cnn predict --file` end to end against the in-process
Predictor on the same file, and against the machine's limit, in one run.

The file is the first `--rows` headlines of `--data` (7,600 by default; a training CSV, never
the test titles), taken again from the top as often as `--rows` needs (240,000 rows of a
10,000-row news.csv: it 24 times). Each round times, in turn:

* served: `news-cnn predict --file IN --out OUT` as a subprocess against a TorchServe
  started here (the archive's model-config, free loopback ports), from the command's start
  to its exit (interpreter start-up included);
* archive: the same command with `--archive` (no server: the handler in a pool of processes,
  one per core, serving/offline_pool.py), with the peak memory of the command and its workers;
* limit: the machine's limit, the Predictor in one process per core, 1 torch thread each,
  each scoring its share of the file (read CSV, predict in chunks of the offline request size,
  write CSV), timed from the moment all have loaded to the last one's end (start-up excluded);
* predictor: read the CSV, `Predictor.predict` in chunks of the handler's max_texts (the
  requests' size) and in one call for the whole file, write label and confidence as CSV;
  the model is loaded once, outside the timing. Each with 1 torch thread (the handler's
  setting) and with torch's default: on a loaded 2-core machine the default's threads spin
  against each other (ten times slower in one measured run), so the faster is the baseline.
  It comes last: a torch that has just run on 2 threads keeps them spinning for a while.

It also records the CPU seconds each served run cost TorchServe's Java frontend, its workers
and the command, to show which of them the 2 cores are spent on.

Prints JSON: headlines/s of each (median over the rounds), the served command's rate over
the best in-process rate, chunked and for the whole file, and the served and archive
commands' rates over the limit (every run reports the ratio of the issue's goal).

    python -m bench.batch_speed --mar model_store/news_cnn.mar --artifacts artifacts \
        --data ../shared/data/ag_news/news.csv
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import psutil

from bench import served_models
from bench.harness import loadavg, machine, temp_root
from serving.archive import read_model_config
from serving.offline_pool import OFFLINE_MAX_TEXTS
from serving.properties import MODEL_NAME, REPO_ROOT
from training.config import available_cores

DEFAULT_ROWS = 7600


def write_rows(data: Path, dest: Path, rows: int) -> int:
    """`rows` rows of `data` (all its columns) to `dest`, from its top again as often as it
    takes; returns how many (fewer only when `data` has none)."""
    with open(data, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header, body = next(reader), list(reader)
    with open(dest, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        count = 0
        while body and count < rows:
            taken = body[:rows - count]
            writer.writerows(taken)
            count += len(taken)
    return count


def split_rows(source: Path, parts: int, root: Path) -> list[Path]:
    """`source` cut into `parts` CSV files of consecutive rows, each with the header."""
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header, body = next(reader), list(reader)
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
    """Wall seconds for one spawned process per part to score it (see the module docstring),
    from the moment every process has loaded the model to the end of the last one."""
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


def peak_rss_command(args: list[str]) -> tuple[float, str, float]:
    """Run `news-cnn ARGS` as `command_seconds` does, sampling the memory of it and its child
    processes every 50 ms; (wall seconds, last stderr line, peak of their summed RSS in MiB)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = psutil.Popen([sys.executable, "-m", "client.news_cnn", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=err, text=True)
        peak = 0
        while process.poll() is None:
            try:
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass  # a process ended between listing and reading
            time.sleep(0.05)
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
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "client.news_cnn", *args], env=env,
                            capture_output=True, text=True, timeout=600)
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
        max_texts = int(read_model_config(mar).get("handler", {})["max_texts"])
        predictor = Predictor.from_dir(artifacts)
        workers = int(read_model_config(mar).get("minWorkers", 1))
        store = root / "store"
        store.mkdir()
        (store / f"{MODEL_NAME}.mar").symlink_to(mar.resolve())
        ts = served_models.start(root / "ts", store, {MODEL_NAME: f"{MODEL_NAME}.mar"}, workers)
        procs = {"frontend": psutil.Process(ts.pid()),
                 **{f"worker {p.pid}": p for p in served_models.worker_processes(ts)}}
        thread_counts = sorted({1, torch.get_num_threads()})
        parts = split_rows(source, available_cores(), root)
        peak_rss: list[float] = []
        times: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}  # CPU seconds of each served run, by process
        lines: dict[str, str] = {}
        try:
            client = ["--config", str(ts.config), "--key-file", str(ts.key_file)]
            for _ in range(rounds):
                # The commands first: a torch that has just run on 2 threads keeps them
                # spinning for a while, taking CPU from whatever runs next on 2 cores.
                server_before, command_before = served_models.cpu_seconds(procs), children_cpu_seconds()
                seconds, lines["served"] = command_seconds(
                    client + ["predict", "--file", str(source), "--out", str(root / "served.csv"), "--force"])
                times.setdefault("served", []).append(seconds)
                server_after = served_models.cpu_seconds(procs)
                cpu.setdefault("frontend", []).append(server_after["frontend"] - server_before["frontend"])
                cpu.setdefault("workers", []).append(sum(server_after[n] - server_before[n]
                                                         for n in procs if n != "frontend"))
                cpu.setdefault("command", []).append(children_cpu_seconds() - command_before)
                seconds, lines["archive"], peak = peak_rss_command(
                    ["predict", "--archive", str(mar), "--file", str(source),
                     "--out", str(root / "archive.csv"), "--force"])
                times.setdefault("archive", []).append(seconds)
                peak_rss.append(peak)
                times.setdefault("limit", []).append(limit_seconds(artifacts, parts, root, OFFLINE_MAX_TEXTS))
                for threads in thread_counts:
                    torch.set_num_threads(threads)
                    for name, chunk in (("chunked", max_texts), ("whole_file", None)):
                        times.setdefault(f"predictor_{name}_{threads}_threads", []).append(
                            predictor_seconds(predictor, source, root / "p.csv", chunk))
        finally:
            ts.stop()
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


def main(argv: list[str] | None = None) -> int:
    """Parse, measure, print JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_speed", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="news-cnn predict --file end to end (served and --archive) against the "
                    "in-process Predictor on the same file, in one run; prints JSON.")
    parser.add_argument("--mar", type=Path, default=Path("model_store") / f"{MODEL_NAME}.mar",
                        help="the archive to serve")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"),
                        help="the training run it came from (the in-process Predictor)")
    parser.add_argument("--data", type=Path, required=True, help="a CSV with a title column")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="headlines in the file")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.mar, args.artifacts, args.data, args.rows, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
