"""`news-cnn`, the project's one command: the REST client's commands and the server's.

    news-cnn [client options] predict|explain|scale|describe ...   (client/__main__.py, REST only)
    news-cnn predict|explain --archive news_cnn.mar ...             (serving/offline.py, no server)
    news-cnn start|stop|drain|status|ready|live|keys|examples|probe|run [options]
                                                                    (serving/__main__.py)

The server's commands come first on the line, and their options after them, as
`python -m serving` takes them. With --archive, predict and explain run the archived model
in this process through the handler, and the client's code does the rest (files, pages).
"""
from __future__ import annotations

import argparse
import os
import sys

from client import __main__ as client_cli
from client.api import HandlerClient, check_answer

# `python -m serving`'s commands, which news-cnn hands it whole (their help and options are
# its); listed here so that a client command need not import the server's command line.
SERVER_COMMANDS = ("start", "stop", "drain", "status", "ready", "live", "keys", "examples", "probe", "run")
PROG = "news-cnn"


def _server_cli():
    """`python -m serving`'s command line, imported only for the server's commands and for
    help: it brings the TorchServe supervisor and `requests`, which a client command does not
    need (a tenth of a second of every `news-cnn predict`)."""
    from serving import __main__ as serving_cli

    return serving_cli


def _commands_of_news_cnn(commands: argparse._SubParsersAction, server_help: bool) -> None:
    """Add to the client's commands what `news-cnn` has more: --archive on predict and explain,
    and the server's commands, listed (`news-cnn NAME --help` shows their own help); their
    one-line help only when `server_help` (help was asked for)."""
    for name in ("predict", "explain"):
        commands.choices[name].add_argument(
            "--archive", default=None,
            help="answer with this .mar (or artifacts directory) in this process, through the "
                 "handler, instead of the server")
        if name == "predict":
            commands.choices[name].add_argument(
                "--ray", action="store_true",
                help="with --archive: score --file (a CSV or Parquet file, or a folder of them) with "
                     "Ray Data into Parquet files in the folder --out; joins the cluster RAY_ADDRESS "
                     "names, else starts Ray here (pip install 'news-cnn[ray]')")
        commands.choices[name].add_argument(
            "--workers", type=int, default=None,
            help="with --archive and --file: processes scoring the file, each loading the archive "
                 "once (default: one per core)")
    for name in SERVER_COMMANDS:
        summary = f"{_server_cli().COMMANDS[name].help} " if server_help else ""
        commands.add_parser(name, help=f"{summary}(`{PROG} {name} --help`)", add_help=False)


def build_parser(server_help: bool = True) -> argparse.ArgumentParser:
    """The client's parser under the name `news-cnn`, with --archive and the server's commands
    (with their one-line help when `server_help`)."""
    parser = client_cli.build_parser(
        prog=PROG, more_commands=lambda commands: _commands_of_news_cnn(commands, server_help))
    parser.description = "Call the served model over REST, or ask about the server."
    return parser


class ArchiveInProcess(HandlerClient):
    """An archive answered in this process (serving.offline.OfflineModel), spoken to like
    NewsClient: a refusal comes back as the ClientError a REST call would raise."""

    def __init__(self, model) -> None:
        self.model = model

    def send(self, body: dict, explain: bool = False) -> object:
        return check_answer(*self.model.call(body, explain))

    def metadata(self) -> dict:
        return self.model.metadata()


def run_archive(args) -> int:
    """predict/explain with --archive: load the archive (a file: in a pool of processes, one per
    core; headlines: in this process), then run the client's command on it."""
    from serving.offline import OfflineError, OfflineModel  # torch: only for --archive

    if args.workers is not None and (args.workers < 1 or not args.file):
        print(f"{PROG}: error: --workers takes 1 or more and goes with --file", file=sys.stderr)
        return 2
    if getattr(args, "ray", False):
        return run_ray(args)
    try:
        if args.file:
            from serving.offline_pool import ArchivePool

            model = ArchivePool(args.archive, args.workers)
        else:
            model = OfflineModel(args.archive)
    except OfflineError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    with model:
        return client_cli.execute(args, model if args.file else ArchiveInProcess(model))


def run_ray(args) -> int:
    """predict --archive --ray: the file or folder scored by Ray Data; one line on stderr."""
    import time

    from client.tables import STDIO, InputError

    if not args.file or args.out == STDIO or args.resume or args.format:
        print(f"{PROG}: error: --ray scores --file PATH into Parquet files in --out DIR "
              f"(no --resume, no --format)", file=sys.stderr)
        return 2
    from serving.ray_batch import predict_with_ray  # torch, and Ray: only for --ray

    start = time.perf_counter()
    try:
        rows = predict_with_ray(args.archive, args.file, args.out, args.column, args.probabilities,
                                args.workers)
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(f"{rows} rows to {args.out} (Parquet) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the server's command line or the client's; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SERVER_COMMANDS:
        return _server_cli().main(argv, prog=PROG)
    args = build_parser(server_help=bool({"-h", "--help"} & set(argv))).parse_args(argv)
    if args.command in SERVER_COMMANDS:
        print(f"{PROG}: error: {args.command} takes no client options: run "
              f"`{PROG} {args.command} [--workdir DIR] [--config FILE]`", file=sys.stderr)
        return 2
    try:
        if getattr(args, "archive", None):
            return run_archive(args)
        return client_cli.execute(args)
    except BrokenPipeError:
        # `news-cnn explain ... | head` closed our stdout: not an error of ours. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
