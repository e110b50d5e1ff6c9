"""Command line for the served model: python -m client {predict,explain,scale,describe} ...

Examples:
  python -m client predict "The final tennis tournament starts next week."
  python -m client explain "Oil prices rise" --png explanation.png
  python -m client scale 3
  python -m client describe
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from client.api import MODEL_NAME, ClientError, NewsClient
from serving.keys import KEY_FILE
from serving.properties import DEFAULT_CONFIG


def build_parser(prog: str = "python -m client") -> argparse.ArgumentParser:
    """The command line: global connection options, then predict / explain / scale / describe."""
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog=prog, description="Call the served model over REST.",
                                     epilog="\n".join(__doc__.splitlines()[2:]).replace(
                                         "python -m client", prog),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="config.properties with the server's addresses (default: %(default)s)")
    parser.add_argument("--key-file", default=str(DEFAULT_CONFIG.parent / KEY_FILE),
                        help="TorchServe's key_file.json, in the directory it started from "
                             "(default: %(default)s)")
    parser.add_argument("--model", default=MODEL_NAME, help="model name (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=4,
                        help="resends of a prediction or explanation that got no answer, a 500, "
                             "502, 503, 504 or 507, or another request's answer (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify headlines", formatter_class=defaults)
    predict.add_argument("texts", nargs="+", help="one or more headlines")
    explain = commands.add_parser("explain", help="explain headlines' predictions", formatter_class=defaults)
    explain.add_argument("texts", nargs="+", help="one or more headlines")
    explain.add_argument("--png", default=None,
                         help="write a heatmap + word-score chart here "
                              "(one headline: PATH; several: PATH with -N)")
    scale = commands.add_parser("scale", help="set the number of workers (waits until done)",
                                formatter_class=defaults)
    scale.add_argument("workers", type=int,
                       help="worker count (0 takes the model out of service; readiness turns false)")
    commands.add_parser("describe", help="show the model's workers and metadata", formatter_class=defaults)
    return parser


def _png_paths(path: str, count: int) -> list[Path]:
    base = Path(path)
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i + 1}{base.suffix or '.png'}") for i in range(count)]


def run(args: argparse.Namespace) -> object:
    """Carry out one parsed command against the server; returns what to print as JSON."""
    client = NewsClient.from_config(args.config, args.key_file, args.model, args.timeout, args.retries)
    if args.command == "predict":
        return client.predict(args.texts)
    if args.command == "explain":
        explanations = client.explain(args.texts)
        if args.png:
            try:  # matplotlib only when a picture is asked for
                from client.plots import plot_explanation
            except ImportError as err:
                raise ClientError(f"--png needs {err.name or 'matplotlib'}, which this Python lacks "
                                  f"({sys.executable}): run the project's venv, "
                                  f"e.g. .venv/bin/news-cnn, after `make install`") from None
            for explanation, path in zip(explanations, _png_paths(args.png, len(explanations))):
                plot_explanation(explanation, path)
                print(f"wrote {path}", file=sys.stderr)
        return explanations
    if args.command == "scale":
        if args.workers < 0:
            raise ClientError("the worker count must be 0 or more")
        return client.scale(args.workers)
    return client.describe()


def main(argv: list[str] | None = None) -> int:
    """`python -m client ...`: parse, run, print the answer as JSON; returns the exit status."""
    return execute(build_parser().parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    """Run parsed arguments; a one-line message on stderr and status 1 when the call fails."""
    try:
        result = run(args)
    except (ClientError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: TorchServe did not answer ({err}); is it running? `make serve` starts it",
              file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
