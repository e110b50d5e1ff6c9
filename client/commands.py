"""What `news-cnn predict|explain|scale|describe` do, once client/news_cnn.py has parsed them.

Each command runs against a server over REST (`client_from`: --url, or the checkout's local
server), or with --archive against the archived model in this process (serving/offline.py).
`execute` turns every way a run can end into an exit status and at most one line on stderr:
0 done, 1 the model did not answer or refused, 2 input or options that cannot be used (an
archive that does not load among them), 130 interrupted.
Rows a --file run wrote stay in --out, and the line says how to finish them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from client import batch, sending, tables
from client.api import ClientError, HandlerClient, NewsClient, check_answer
from serving import cli
from serving.properties import DEFAULT_CONFIG
from serving.rest import NoAnswer

PROG = "news-cnn"
# The environment variables that stand for the global options of the same name.
ENV = {"url": "NEWS_CNN_URL", "token": "NEWS_CNN_TOKEN", "management_url": "NEWS_CNN_MANAGEMENT_URL",
       "management_token": "NEWS_CNN_MANAGEMENT_TOKEN"}
# The options that only a --file run reads, with their defaults.
FILE_ONLY = {"out": tables.STDIO, "probabilities": False, "resume": False, "force": False,
             "html": None, "format": None, "column": "title"}


class ArchiveInProcess(HandlerClient):
    """An archive answered in this process (serving.offline.OfflineModel), spoken to like
    NewsClient: a refusal comes back as the ClientError a REST call would raise."""

    def __init__(self, model) -> None:
        self.model = model

    def send(self, body: dict, explain: bool = False) -> object:
        return check_answer(*self.model.call(body, explain))

    def metadata(self) -> dict:
        return self.model.metadata()


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


def check_file_options(args: argparse.Namespace) -> None:
    """predict/explain: headlines or --file, and the --file options only with --file (InputError)."""
    if bool(args.texts) == bool(args.file):
        raise tables.InputError("give headlines or --file, not both" if args.texts else
                                "give one or more headlines, or --file with a file of them")
    if not args.file:
        given = [n for n, default in FILE_ONLY.items() if getattr(args, n, default) != default]
        if given:
            raise tables.InputError(f"--{given[0]} goes with --file")
    elif getattr(args, "png", None):
        raise tables.InputError("--png draws single headlines: use --html with --file")
    elif args.command == "explain" and not args.html:
        raise tables.InputError("explain --file writes a page: name it with --html report.html")
    if args.in_flight < 1:
        raise tables.InputError(f"--in-flight must be 1 or more, not {args.in_flight}")
    if args.workers is not None and (args.workers < 1 or not args.file or not args.archive):
        raise tables.InputError("--workers takes 1 or more and goes with --archive and --file")
    if getattr(args, "ray", False) and (not args.archive or not args.file or args.out == tables.STDIO
                                        or args.resume or args.format):
        raise tables.InputError("--ray scores --file PATH with --archive into Parquet files in --out DIR "
                                "(no --resume, no --format)")


def predict(model: sending.Model, args: argparse.Namespace) -> object:
    """`predict HEADLINE...`: one answer per headline."""
    return model.predict(args.texts)


def explain(model: sending.Model, args: argparse.Namespace) -> object:
    """`explain HEADLINE...`: one explanation per headline, each drawn to a PNG with --png."""
    explanations = model.explain(args.texts)
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


def _png_paths(path: str, count: int) -> list[Path]:
    base = Path(path)
    if count == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i + 1}{base.suffix or '.png'}") for i in range(count)]


def scale(model: NewsClient, args: argparse.Namespace) -> object:
    """`scale N`: set the number of workers and wait until done."""
    if args.workers < 0:
        raise ClientError("the worker count must be 0 or more")
    return model.scale(args.workers)


def describe(model: NewsClient, args: argparse.Namespace) -> object:
    """`describe`: the model's workers and metadata."""
    return model.describe()


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


def execute(args: argparse.Namespace, model: sending.Model | None = None) -> int:
    """Run a parsed client command against `model`, else the archive of --archive, else the
    server; print the answer as JSON. Returns the exit status (module docstring)."""
    summary = batch.Summary()
    try:
        if args.command in ("predict", "explain"):
            check_file_options(args)
            if model is None and args.archive:
                return _with_archive(args)
        model = model or client_from(args)
        if getattr(args, "file", None):
            run_file(args, model, summary)
            return 0
        result = args.run(model, args)
    except tables.InputError as err:
        print(f"error: {err}{_kept(args, summary)}", file=sys.stderr)
        return cli.USAGE
    except KeyboardInterrupt:
        print(f"interrupted{_kept(args, summary)}", file=sys.stderr)
        return cli.INTERRUPTED
    except (ClientError, FileNotFoundError) as err:
        print(f"error: {err}{_kept(args, summary)}", file=sys.stderr)
        return cli.FAILED
    except BrokenPipeError:
        raise  # stdout's reader went away (`| head`): news_cnn.main's to handle, not an error
    except OSError as err:  # NoAnswer among them
        print(f"error: {_unanswered(err, args)}{_kept(args, summary)}", file=sys.stderr)
        return cli.FAILED
    print(json.dumps(result, indent=2))
    return 0


def _with_archive(args: argparse.Namespace) -> int:
    """predict/explain --archive: load the archive (for a file: a pool of processes, one per
    core; for headlines: in this process), then run the command on it."""
    from serving.offline import OfflineError, OfflineModel  # torch: only for --archive

    if getattr(args, "ray", False):
        return _with_ray(args)
    try:
        if args.file:
            from serving.offline_pool import ArchivePool

            model = ArchivePool(args.archive, args.workers)
        else:
            model = OfflineModel(args.archive)
    except OfflineError as err:
        print(f"error: {err}", file=sys.stderr)
        return cli.USAGE
    with model:
        return execute(args, model if args.file else ArchiveInProcess(model))


def _with_ray(args: argparse.Namespace) -> int:
    """predict --archive --ray: the file or folder scored by Ray Data; one line on stderr."""
    from serving.ray_batch import predict_with_ray  # torch, and Ray: only for --ray

    start = time.perf_counter()
    rows = predict_with_ray(args.archive, args.file, args.out, args.column, args.probabilities, args.workers)
    print(f"{rows} rows to {args.out} (Parquet) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
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
