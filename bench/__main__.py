"""python -m bench {run,soak,profile}: the benchmark, the reliability suite, a worker profile.

    python -m bench run   [--quick] [--cases floor,batching,...]  -> bench/results.{json,md,png}
    python -m bench soak  [--quick]                               -> bench/soak.json
    python -m bench profile [--seconds 10]                        -> bench/profile.txt
    python -m bench peers [--quick] [--cases peers,explanations,grid] -> bench/peers.{json,md,png}
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

from bench.benchmark import CASES as BENCH_CASES
from bench.peer_servers import PEERS
from bench.peers import CASES as PEER_CASES
from bench.soak import CASES as SOAK_CASES
from serving.properties import MODEL_NAME

REPO = Path(__file__).resolve().parent.parent


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mar", type=Path, default=REPO / "model_store" / f"{MODEL_NAME}.mar",
                        help="the archive to serve (make archive)")
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts",
                        help="the training run the archive came from (in-process reference)")
    parser.add_argument("--config", type=Path, default=REPO / "config.properties",
                        help="TorchServe config.properties (ports are replaced by free ones)")
    parser.add_argument("--data", type=Path, default=None,
                        help="CSV with a title column for request bodies (default: the test "
                             "split ARTIFACTS/test.csv, else $DATA, else a built-in sample)")
    parser.add_argument("--out", type=Path, default=REPO / "bench", help="output directory")
    parser.add_argument("--quick", action="store_true", help="short runs (rough figures)")


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


def _check_inputs(args: argparse.Namespace) -> str | None:
    for path, fix in ((args.mar, "make archive"), (args.config, "restore config.properties"),
                      (args.artifacts, "make train")):
        if not path.exists():
            return f"{path} is missing: run `{fix}` first (or pass its path)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="benchmark: throughput and latency with ratios")
    _common(run)
    run.add_argument("--cases", type=_cases(BENCH_CASES), default=BENCH_CASES,
                     help=f"comma-separated subset of {','.join(BENCH_CASES)}")
    run.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    soak = sub.add_parser("soak", help="reliability suite: load, crash, scaling, bad input, auth, stop")
    _common(soak)
    soak.add_argument("--cases", type=_cases(SOAK_CASES), default=SOAK_CASES,
                      help=f"comma-separated subset of {','.join(SOAK_CASES)}")
    profile = sub.add_parser("profile", help="py-spy profile of a worker under load")
    _common(profile)
    profile.add_argument("--seconds", type=float, default=10.0)
    profile.add_argument("--concurrency", type=int, default=16)
    profile.add_argument("--path", default=f"/predictions/{MODEL_NAME}")
    peers = sub.add_parser("peers", help="TorchServe vs FastAPI and Ray Serve on the same model; "
                                         "batch settings grid (needs bench/requirements-peers.txt)")
    _common(peers)
    peers.add_argument("--cases", type=_cases(PEER_CASES), default=PEER_CASES,
                       help=f"comma-separated subset of {','.join(PEER_CASES)}")
    peers.add_argument("--peers", type=_cases(PEERS), default=PEERS,
                       help=f"comma-separated subset of {','.join(PEERS)}")
    peers.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    args = parser.parse_args(argv)

    if args.data is None:
        split = args.artifacts / "test.csv"
        data = os.environ.get("DATA")
        args.data = split if split.is_file() else (Path(data) if data else None)
    problem = _check_inputs(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "soak":
            return _soak(args)
        if args.command == "peers":
            return _peers(args)
        return _profile(args)
    except (RuntimeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from bench import benchmark, report
    make = benchmark.BenchSettings.quick if args.quick else benchmark.BenchSettings
    settings = make(mar=args.mar, artifacts=args.artifacts, config=args.config,
                    out_dir=args.out, data=args.data)
    if args.duration:
        settings.duration_s = args.duration
    results = benchmark.run(settings, args.cases)
    paths = report.write(results, args.out)
    print(report.markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _peers(args: argparse.Namespace) -> int:
    missing = [m for m in ("fastapi", "uvicorn", "ray") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"error: {', '.join(missing)} not installed: run `make bench-peers` (installs "
              "bench/requirements-peers.txt) or pip install -r bench/requirements-peers.txt", file=sys.stderr)
        return 2
    from bench import peers, peers_report
    make = peers.PeerSettings.quick if args.quick else peers.PeerSettings
    settings = make(mar=args.mar, artifacts=args.artifacts, config=args.config, out_dir=args.out,
                    data=args.data)
    if args.duration:
        settings.duration_s = args.duration
    results = peers.run(settings, args.cases, args.peers)
    paths = peers_report.write(results, args.out)
    print(peers_report.markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    # A peer that answers differently is a finding to fix, not a figure.
    return 1 if results["refused"] else 0


def _soak(args: argparse.Namespace) -> int:
    from bench import soak
    sizes = soak.SoakSizes.quick() if args.quick else soak.SoakSizes()
    results = soak.run(args.mar, args.artifacts, args.config, sizes, args.data, args.cases)
    out = args.out / "soak.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(case.get("passed") for case in results["cases"].values()) else 1


def _profile(args: argparse.Namespace) -> int:
    from bench import profile
    text = profile.run(args.mar, args.config, args.data, args.seconds, args.concurrency, args.path)
    out = args.out / "profile.txt"
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
