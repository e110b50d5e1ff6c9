"""Command line for the served model: python -m client {predict,explain,scale,describe} ...

Examples:
  python -m client predict "The final tennis tournament starts next week."
  python -m client predict --file headlines.csv --out answers.csv
  python -m client explain "Oil prices rise" --png explanation.png
  python -m client explain --file headlines.csv --html report.html
  python -m client scale 3
  python -m client describe
  python -m client --url http://host:8080 --token KEY predict "Oil prices rise"
  NEWS_CNN_URL=https://gateway/v1 python -m client --header 'X-Api-Key: KEY' predict "Oil rises"
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from client import batch, sending, tables
from client.api import MODEL_NAME, ClientError, NewsClient
from serving.properties import DEFAULT_CONFIG
from serving.rest import NoAnswer

# The environment variables that stand for the global options of the same name.
ENV = {"url": "NEWS_CNN_URL", "token": "NEWS_CNN_TOKEN", "management_url": "NEWS_CNN_MANAGEMENT_URL",
       "management_token": "NEWS_CNN_MANAGEMENT_TOKEN"}


def build_parser(prog: str = "python -m client",
                 more_commands: Callable[[argparse._SubParsersAction], None] | None = None,
                 ) -> argparse.ArgumentParser:
    """The command line: global connection options, then predict / explain / scale / describe,
    and the commands `more_commands(subparsers)` adds (`news-cnn` adds the server's)."""
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog=prog, description="Call the served model over REST.",
                                     epilog="\n".join(__doc__.splitlines()[2:]).replace(
                                         "python -m client", prog),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None,
                        help=f"the inference API's base URL, e.g. http://host:8080 (or {ENV['url']})")
    parser.add_argument("--token", default=None,
                        help=f"its key, sent as `Authorization: Bearer` (or {ENV['token']}); "
                             "none: no key is sent")
    parser.add_argument("--management-url", default=None,
                        help=f"the management API's base URL, for scale and describe "
                             f"(or {ENV['management_url']})")
    parser.add_argument("--management-token", default=None,
                        help=f"the management API's key (or {ENV['management_token']})")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="a header sent with every call, e.g. a gateway's 'X-Api-Key: ...' "
                             "(repeatable)")
    parser.add_argument("--config", default=None,
                        help="without --url: the config.properties of the TorchServe to call "
                             "(in a checkout: its config.properties, as `make serve` uses it)")
    parser.add_argument("--key-file", default=None,
                        help="with --config: its key_file.json, read on every call (default: "
                             "beside the config)")
    parser.add_argument("--model", default=MODEL_NAME, help="model name (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=4,
                        help="resends of a prediction or explanation that got no answer, a 500, "
                             "502, 503, 504 or 507, or another request's answer (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify headlines, or a file of them",
                                  formatter_class=defaults)
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
    explain = commands.add_parser("explain", help="explain headlines' predictions, or a file's",
                                  formatter_class=defaults)
    explain.add_argument("texts", nargs="*", help="one or more headlines (or --file)")
    explain.add_argument("--png", default=None,
                         help="write the n-grams and word scores as a chart here "
                              "(one headline: PATH; several: PATH with -N)")
    _file_options(explain)
    explain.add_argument("--html", default=None,
                         help="with --file: write one self-contained page explaining every headline")
    scale = commands.add_parser("scale", help="set the number of workers (waits until done)",
                                formatter_class=defaults)
    scale.add_argument("workers", type=int,
                       help="worker count (0 takes the model out of service; readiness turns false)")
    commands.add_parser("describe", help="show the model's workers and metadata", formatter_class=defaults)
    if more_commands:
        more_commands(commands)
    return parser


def _file_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--file", default=None,
                         help="a CSV (header row), .jsonl or .parquet file of headlines; - reads stdin")
    command.add_argument("--column", default="title", help="with --file: the headlines' column")
    command.add_argument("--format", choices=tables.FORMATS, default=None,
                         help="with --file: the input's format; when not given, a .jsonl file is "
                              "JSON lines, a .parquet file Parquet and anything else CSV")
    command.add_argument("--in-flight", type=int, default=sending.DEFAULT_IN_FLIGHT,
                         help="with --file: requests out at a time")


def _png_paths(path: str, count: int) -> list[Path]:
    base = Path(path)
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i + 1}{base.suffix or '.png'}") for i in range(count)]


def check_file_options(args: argparse.Namespace) -> None:
    """Headlines or --file, and the --file options only with --file (ClientError)."""
    if args.command not in ("predict", "explain"):
        return
    if bool(args.texts) == bool(args.file):
        raise tables.InputError("give headlines or --file, not both" if args.texts else
                               "give one or more headlines, or --file with a file of them")
    file_only = {"out": tables.STDIO, "probabilities": False, "resume": False, "force": False,
                 "html": None, "format": None, "column": "title"}
    if not args.file:
        given = [n for n, default in file_only.items() if getattr(args, n, default) != default]
        if given:
            raise tables.InputError(f"--{given[0]} goes with --file")
    elif getattr(args, "png", None):
        raise tables.InputError("--png draws single headlines: use --html with --file")
    elif args.command == "explain" and not args.html:
        raise tables.InputError("explain --file writes a page: name it with --html report.html")
    if args.in_flight < 1:
        raise tables.InputError(f"--in-flight must be 1 or more, not {args.in_flight}")


def client_from(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> NewsClient:
    """The REST client the global options (or the NEWS_CNN_* variables) describe: --url and its
    tokens; else the TorchServe of --config, or of the checkout's config.properties, with its
    key file. Installed without a checkout and given neither, a ClientError says what to set."""
    given = {name: getattr(args, name) or environ.get(variable) or None for name, variable in ENV.items()}
    options = {"headers": _headers(args.header), "model": args.model, "timeout": args.timeout,
               "retries": args.retries}
    if given["url"]:
        return NewsClient(given["url"], given["token"], management_url=given["management_url"],
                          management_token=given["management_token"], **options)
    if args.config or DEFAULT_CONFIG.is_file():
        return NewsClient.local(args.config or DEFAULT_CONFIG, args.key_file, **options)
    raise ClientError(f"no server to call: give --url URL (and --token TOKEN if it asks for a key), "
                      f"or set {ENV['url']} (and {ENV['token']})")


def _headers(lines: list[str]) -> dict[str, str]:
    """--header 'Name: value' options as a dict (InputError when one has no name)."""
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise tables.InputError(f"--header {line!r}: give it as 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def run_file(args: argparse.Namespace, model: sending.Model, summary: batch.Summary) -> None:
    """predict/explain --file: answers to --out, or explanations to --html; one line on stderr."""
    options = batch.BatchOptions(column=args.column, kind=args.format, in_flight=args.in_flight,
                                 probabilities=getattr(args, "probabilities", False),
                                 progress=sys.stderr.isatty())
    if args.command == "predict":
        batch.predict_file(model, args.file, args.out, options, args.resume, args.force, summary)
        print(summary.line(args.out), file=sys.stderr)
        return
    from client.report import write_report  # the page: only when asked for

    rows = batch.explain_file(model, args.file, options)
    write_report(rows, args.html, source=args.file)
    print(f"wrote {args.html}: {len(rows)} headlines", file=sys.stderr)


def run(args: argparse.Namespace, model: sending.Model | None = None) -> object:
    """Carry out one parsed command against the server (or `model`); returns what to print
    as JSON."""
    client = model or client_from(args)
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
            for explanation, path in zip(explanations, _png_paths(args.png, len(explanations)), strict=True):
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


def execute(args: argparse.Namespace, model: sending.Model | None = None) -> int:
    """Run parsed arguments against the server (or `model`, an archive in process); one line
    on stderr and status 1 when the model does not answer or refuses the key, 2 when the
    input cannot be read, 130 when interrupted. Rows a --file run wrote stay in --out."""
    summary = batch.Summary()
    try:
        check_file_options(args)
        if getattr(args, "file", None):
            run_file(args, model or client_from(args), summary)
            return 0
        result = run(args, model)
    except tables.InputError as err:
        print(f"error: {err}{_kept(args, summary)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{_kept(args, summary)}", file=sys.stderr)
        return 130
    except (ClientError, FileNotFoundError) as err:
        print(f"error: {err}{_kept(args, summary)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # stdout's reader went away (`| head`): the console's to handle, not an error
    except OSError as err:  # NoAnswer among them
        print(f"error: {_unanswered(err, args)}{_kept(args, summary)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _kept(args: argparse.Namespace, summary: batch.Summary) -> str:
    """What a stopped --file run leaves, and how to finish it ("" for other commands)."""
    out = getattr(args, "out", tables.STDIO)
    written = summary.resumed + summary.rows
    if not getattr(args, "file", None) or args.command != "predict" or out == tables.STDIO or not written:
        return ""
    if tables.format_of(out) == "parquet":
        return f"; {out} is written whole at the end, so it was not written: run the command again"
    return f"; {written} answered rows are in {out}: the same command with --resume finishes it"


def _unanswered(err: OSError, args: argparse.Namespace) -> str:
    """One line for a server that gave no answer."""
    if not isinstance(err, NoAnswer):
        return str(err)
    remote = getattr(args, "url", None) or os.environ.get(ENV["url"])
    hint = "" if remote else "; is it running? `make serve` starts the local one"
    return f"TorchServe did not answer at {err.url} ({err.why}){hint}"


if __name__ == "__main__":
    sys.exit(main())
