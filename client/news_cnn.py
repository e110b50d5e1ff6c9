"""`news-cnn`, the project's one command: call the served model over REST, or run the server.

    news-cnn [--url URL --token TOKEN ...] predict|explain|scale|describe ...  (the model, over REST)
    news-cnn predict|explain --archive news_cnn.mar ...     (the archive in this process, no server)
    news-cnn start|stop|drain|status|ready|live|keys|examples|probe|run ...   (the local TorchServe)

Examples:
  news-cnn predict "The final tennis tournament starts next week."
  news-cnn predict --file headlines.csv --out answers.csv
  news-cnn explain "Oil prices rise" --png explanation.png
  news-cnn explain --file headlines.csv --html report.html
  news-cnn scale 3
  news-cnn --url http://host:8080 --token KEY predict "Oil prices rise"
  NEWS_CNN_URL=https://gateway/v1 news-cnn --header 'X-Api-Key: KEY' predict "Oil rises"
  news-cnn status

Without --url (or NEWS_CNN_URL), a client command calls the checkout's `make serve` server with
its key file, re-read on every call. `python -m client` is the same command.
"""
from __future__ import annotations

import argparse
import sys

from client import commands, sending, tables
from client.api import MODEL_NAME
from client.commands import ENV
from serving import __main__ as server_commands
from serving import cli


def build_parser(prog: str = commands.PROG) -> argparse.ArgumentParser:
    """The whole command line: the connection options, then one command."""
    parser = cli.command_line(prog, __doc__.replace(commands.PROG, prog))
    _connection_options(parser)
    subcommands = cli.subcommands(parser)
    predict = cli.add_command(subcommands, "predict", commands.predict,
                              "classify headlines, or a file of them")
    predict.add_argument("texts", nargs="*", help="one or more headlines (or --file)")
    _file_options(predict)
    predict.add_argument("--out", default=tables.STDIO,
                         help="with --file: the answers, every input column then label, confidence, "
                              "abstained, error (- for stdout; same format as the input)")
    predict.add_argument("--probabilities", action="store_true",
                         help=f"with --file: add a {tables.PROBABILITY_PREFIX}<class> column per class")
    predict.add_argument("--resume", action="store_true",
                         help="with --file: finish an interrupted --out without resending its rows")
    predict.add_argument("--force", action="store_true", help="with --file: replace an existing --out")
    predict.add_argument("--ray", action="store_true",
                         help="with --archive: score --file (a CSV or Parquet file, or a folder of them) "
                              "with Ray Data into Parquet files in the folder --out; joins the cluster "
                              "RAY_ADDRESS names, else starts Ray here (pip install 'news-cnn[ray]')")
    explain = cli.add_command(subcommands, "explain", commands.explain,
                              "explain headlines' predictions, or a file's")
    explain.add_argument("texts", nargs="*", help="one or more headlines (or --file)")
    explain.add_argument("--png", help="write the n-grams and word scores as a chart here "
                                       "(one headline: PATH; several: PATH with -N)")
    _file_options(explain)
    explain.add_argument("--html",
                         help="with --file: write one self-contained page explaining every headline")
    scale = cli.add_command(subcommands, "scale", commands.scale,
                            "set the number of workers (waits until done)")
    scale.add_argument("workers", type=int,
                       help="worker count (0 takes the model out of service; readiness turns false)")
    cli.add_command(subcommands, "describe", commands.describe, "show the model's workers and metadata")
    server_commands.add_commands(subcommands)
    return parser


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """Which server a client command calls, and how; given before the command."""
    parser.add_argument("--url",
                        help=f"the inference API's base URL, e.g. http://host:8080 (or {ENV['url']})")
    parser.add_argument("--token", help=f"its key, sent as `Authorization: Bearer` (or {ENV['token']}); "
                                        "none: no key is sent")
    parser.add_argument("--management-url", help=f"the management API's base URL, for scale and describe "
                                                  f"(or {ENV['management_url']})")
    parser.add_argument("--management-token", help=f"the management API's key (or {ENV['management_token']})")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="a header sent with every call, e.g. a gateway's 'X-Api-Key: ...' (repeatable)")
    parser.add_argument("--config", help="without --url: the config.properties of the TorchServe to call "
                                         "(in a checkout: its config.properties, as `make serve` uses it)")
    parser.add_argument("--key-file", help="with --config: its key_file.json, read on every call (default: "
                                           "beside the config)")
    parser.add_argument("--model", default=MODEL_NAME, help="model name")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    parser.add_argument("--retries", type=int, default=4,
                        help="resends of a prediction or explanation that got no answer, a 500, 502, 503, "
                             "504 or 507, or another request's answer")


def _file_options(command: argparse.ArgumentParser) -> None:
    """predict's and explain's options for a file of headlines, and for answering in process."""
    command.add_argument("--file",
                         help="a CSV (header row), .jsonl or .parquet file of headlines; - reads stdin")
    command.add_argument("--column", default="title", help="with --file: the headlines' column")
    command.add_argument("--format", choices=tables.FORMATS,
                         help="with --file: the input's format; when not given, a .jsonl file is JSON "
                              "lines, a .parquet file Parquet and anything else CSV")
    command.add_argument("--in-flight", type=int, default=sending.DEFAULT_IN_FLIGHT,
                         help="with --file: requests out at a time")
    command.add_argument("--archive", help="answer with this .mar (or artifacts directory) in this "
                                           "process, through the handler, instead of the server")
    command.add_argument("--workers", type=int,
                         help="with --archive and --file: processes scoring the file, each loading the "
                              "archive once (default: one per core)")


def main(argv: list[str] | None = None, prog: str = commands.PROG) -> int:
    """Parse and carry out one command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "server_command", False):
            # They take their own --config, --model and --timeout, after the command.
            given = [argv[i] for i in range(argv.index(args.command)) if argv[i].startswith("--")]
            if given:
                print(f"error: {args.command} takes no client options ({given[0]}): run "
                      f"`{prog} {args.command} [--workdir DIR] [--config FILE]`", file=sys.stderr)
                return cli.USAGE
            return server_commands.run(args)
        return commands.execute(args)
    except BrokenPipeError:  # `news-cnn explain ... | head` closed our stdout
        return cli.stdout_closed()


if __name__ == "__main__":
    sys.exit(main())
