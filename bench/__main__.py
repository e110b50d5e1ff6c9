"""python -m bench {run,peers,compare,profile}: the benchmarks of the served model.

    python -m bench run     [--quick] [--cases floor,batching,...]   -> bench/results.{json,md,png}
    python -m bench peers   [--quick] [--cases peers,explanations,grid] -> bench/peers.{json,md,png}
    python -m bench compare --baseline OLD.mar [--baseline-batching]  -> bench/compare.{json,md}
    python -m bench profile [--seconds 10]                           -> bench/profile.txt

The reliability suite is pytest's: `make soak` (tests/reliability/).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from bench.benchmark import CASES as BENCH_CASES
from bench.peers.run import CASES as PEER_CASES
from bench.peers.run import DEFAULT_CASES as PEER_DEFAULT_CASES
from bench.peers.run import GRID_PARTS as PEER_GRID_PARTS
from bench.peers.servers import PEERS
from serving import cli
from serving.properties import MODEL_NAME

REPO = Path(__file__).resolve().parent.parent


# Options several commands share, each declared once; a command lists the ones it takes.
_INPUTS = cli.shared_options()
_INPUTS.add_argument("--mar", type=Path, default=REPO / "model_store" / f"{MODEL_NAME}.mar",
                     help="the archive to serve (make archive)")
_INPUTS.add_argument("--artifacts", type=Path, default=REPO / "artifacts",
                     help="the training run the archive came from (in-process reference)")
_INPUTS.add_argument("--config", type=Path, default=REPO / "config.properties",
                     help="TorchServe config.properties (ports are replaced by free ones)")
_INPUTS.add_argument("--data", type=Path, default=None,
                     help="CSV with a title column for request bodies (default: the test "
                          "split ARTIFACTS/test.csv, else $DATA, else a built-in sample)")
_INPUTS.add_argument("--out", type=Path, default=REPO / "bench", help="output directory")
_LOAD = cli.shared_options()
_LOAD.add_argument("--quick", action="store_true", help="short runs (rough figures)")
_LOAD.add_argument("--duration", type=float, default=None, help="seconds per measurement")
_LOAD.add_argument("--rounds", type=int, default=None, help="alternated rounds (best kept)")


def _cases(known: tuple[str, ...]):
    """An argparse type: a comma-separated subset of `known`, refused at parse time otherwise."""
    def parse(text: str) -> tuple[str, ...]:
        cases = tuple(c.strip() for c in text.split(",") if c.strip())
        unknown = [c for c in cases if c not in known]
        if unknown or not cases:
            raise argparse.ArgumentTypeError(
                f"unknown case(s) {', '.join(unknown) or '(none given)'}; choose from {','.join(known)}")
        return cases
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The bench's subcommands and their options."""
    parser = cli.command_line("python -m bench", __doc__)
    commands = cli.subcommands(parser)
    run = cli.add_command(commands, "run", _run, "benchmark: throughput and latency with ratios",
                          (_INPUTS, _LOAD))
    run.add_argument("--cases", type=_cases(BENCH_CASES), default=BENCH_CASES,
                     help=f"comma-separated subset of {','.join(BENCH_CASES)}")
    peers = cli.add_command(commands, "peers", _peers, "TorchServe vs FastAPI, Ray Serve, LitServe and "
                            "BentoML on the same model; batch settings grid (needs "
                            "bench/requirements-peers.txt)", (_INPUTS, _LOAD))
    peers.add_argument("--cases", type=_cases(PEER_CASES), default=PEER_DEFAULT_CASES,
                       help=f"comma-separated subset of {','.join(PEER_CASES)}")
    peers.add_argument("--peers", type=_cases(PEERS), default=PEERS,
                       help=f"comma-separated subset of {','.join(PEERS)}")
    peers.add_argument("--grid-parts", type=_cases(PEER_GRID_PARTS), default=PEER_GRID_PARTS,
                       help=f"the grid's parts to measure, a comma-separated subset of "
                            f"{','.join(PEER_GRID_PARTS)} (the shipped setting is always measured)")
    peers.add_argument("--grid-rounds", type=int, default=None,
                       help="alternated rounds of the grid (best kept; default 1)")
    compare = cli.add_command(commands, "compare", _compare,
                              "the served archive against an older one, in one TorchServe", (_INPUTS, _LOAD))
    compare.add_argument("--baseline", type=Path, required=True, help="the reference .mar")
    compare.add_argument("--workers", type=int, default=2, help="workers per archive")
    compare.add_argument("--baseline-batching", action="store_true",
                         help="serve the candidate with the baseline's batchSize and maxBatchDelay")
    profile = cli.add_command(commands, "profile", _profile, "py-spy profile of a worker under load",
                              (_INPUTS,))
    profile.add_argument("--seconds", type=float, default=10.0, help="how long py-spy samples the worker")
    profile.add_argument("--concurrency", type=int, default=16, help="wrk connections during the profile")
    profile.add_argument("--path", default=f"/predictions/{MODEL_NAME}", help="the URL path under load")
    return parser


def _missing_input(args: argparse.Namespace) -> str | None:
    needed = [(args.mar, "make archive"), (args.config, "restore config.properties")]
    if args.command == "compare":
        needed.append((args.baseline, "make archive"))
    else:
        needed.append((args.artifacts, "make train"))
    for path, fix in needed:
        if not path.exists():
            return f"{path} is missing: run `{fix}` first (or pass its path)"
    return None


def main(argv: list[str] | None = None) -> int:
    """`python -m bench COMMAND`: check the inputs, run, write the results; the exit status."""
    args = build_parser().parse_args(argv)
    if args.data is None:
        split = args.artifacts / "test.csv"
        data = os.environ.get("DATA")
        args.data = split if split.is_file() else (Path(data) if data else None)
    problem = _missing_input(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return cli.USAGE
    if args.command == "peers":
        missing = [m for m in ("fastapi", "uvicorn", "ray", "litserve", "bentoml")
                   if importlib.util.find_spec(m) is None]
        if missing:
            print(f"error: {', '.join(missing)} not installed: run `make bench-peers` (installs "
                  "bench/requirements-peers.txt, hash-locked)",
                  file=sys.stderr)
            return cli.USAGE
    try:
        return args.run(args)
    except (RuntimeError, TimeoutError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return cli.FAILED


def _settings(make, args: argparse.Namespace):
    """`make` (a LoadSettings class) from the common options, --quick first, then the overrides."""
    build = make.quick if args.quick else make
    settings = build(mar=args.mar, artifacts=args.artifacts, config=args.config, out_dir=args.out,
                     data=args.data)
    if args.duration:
        settings.duration_s = args.duration
    if args.rounds:
        settings.rounds = args.rounds
    return settings


def _run(args: argparse.Namespace) -> int:
    from bench import benchmark, report
    results = benchmark.run(_settings(benchmark.BenchSettings, args), args.cases)
    paths = report.write(results, args.out)
    print(report.markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _peers(args: argparse.Namespace) -> int:
    from bench.peers import report as peers_report
    from bench.peers import run as peers
    settings = _settings(peers.PeerSettings, args)
    settings.grid_parts = args.grid_parts
    if args.grid_rounds:
        settings.grid_rounds = args.grid_rounds
    results = peers.run(settings, args.cases, args.peers)
    paths = peers_report.write(results, args.out)
    print(peers_report.markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    # A peer that answers differently is a finding to fix, not a figure.
    return 1 if results["refused"] else 0


def _compare(args: argparse.Namespace) -> int:
    from bench import compare, harness
    settings = _settings(compare.CompareSettings, args)
    settings.workers, settings.baseline_batching = args.workers, args.baseline_batching
    result = compare.run(args.baseline, settings)
    table = compare.markdown(result)
    paths = harness.write(args.out, "compare", result, table)
    print(table)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _profile(args: argparse.Namespace) -> int:
    from bench import profile
    text = profile.run(args.mar, args.config, args.data, args.seconds, args.concurrency, args.path)
    out = args.out / "profile.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
