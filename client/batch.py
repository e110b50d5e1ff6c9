"""A file of headlines in, the same rows with their answers out, in input order.

One implementation for both ways of answering: the served model over REST (`NewsClient`)
and the archive run in this process (serving/offline.py, reached through the `news-cnn`
command, client/news_cnn.py). Either is a `Model`: `send(body, explain)` posts one JSON
body and returns the answer, or raises `ClientError` carrying the handler's status and JSON
error.

Rows go out in requests of up to the handler's `max_texts` headlines, `in_flight` requests
at a time, and are written in input order as they are answered, whole rows only. A request
the handler refuses for one of its headlines (a 400 or 413 naming its index) is split
around it: that headline is sent alone, its refusal becomes its row's `error`, and the
others are answered. A refusal naming no headline (TorchServe's 413 for a body over
max_request_size) splits the request in halves down to single headlines. Anything else (no
answer after the client's retries, a refused key, an unknown model) stops the run: the rows
written so far stay, and `--resume` finds where to go on (`Output.resume`).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from client.sending import DEFAULT_IN_FLIGHT, Model, answered_in_order, model_limits
from client.tables import (
    STDIO,
    InputError,
    Outcome,
    Output,
    Record,
    answer_columns,
    count_records,
    format_of,
    make_table,
    read_through,
    reading,
    skip_done,
)


@dataclass
class Summary:
    """Counts of one run, for the closing line on stderr."""

    resumed: int = 0
    rows: int = 0
    labelled: int = 0
    abstained: int = 0
    refused: int = 0
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.rows += 1
        answer = outcome.answer or {}
        if outcome.error is not None:
            self.refused += 1
        elif answer.get("label") is not None:
            self.labelled += 1
        else:
            self.abstained += 1

    def line(self, out: str) -> str:
        """One line: rows, time, rate, and what became of them."""
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        resumed = f" after {self.resumed} already there" if self.resumed else ""
        return (f"{self.rows} rows to {'stdout' if out == STDIO else out}{resumed} in "
                f"{self.seconds:.1f} s ({rate:.0f} rows/s): {self.labelled} labelled, "
                f"{self.abstained} abstained, {self.refused} with an error")


@dataclass
class BatchOptions:
    """How to read the input and what to add to each row."""

    column: str = "title"
    kind: str | None = None  # csv or jsonl; None: from the input's suffix
    probabilities: bool = False
    in_flight: int = DEFAULT_IN_FLIGHT
    progress: bool = False  # a tqdm bar on stderr


def predict_file(model: Model, source: str, out: str, options: BatchOptions, resume: bool = False,
                 force: bool = False, summary: Summary | None = None) -> Summary:
    """Answer every row of `source` into `out` (see the module docstring); returns the
    counts, kept up to date in `summary` as rows are written.

    InputError when the input, or the output to resume, cannot be used; ClientError or
    requests' errors when the model stops answering (the rows written so far stay)."""
    kind = format_of(source, options.kind)
    if out != STDIO and Path(out).suffix.lower() in (".csv", ".jsonl", ".parquet") and format_of(out) != kind:
        raise InputError(f"the output {out} would be {kind} like the input: name it *.{kind}")
    if out != STDIO and source != STDIO and Path(out).resolve() == Path(source).resolve():
        raise InputError(f"the output {out} is the input: name another file")
    table = make_table(kind, options.column, source)
    summary = summary if summary is not None else Summary()
    start = time.perf_counter()
    with _reading(kind, source) as stream:
        records = read_through(table.read(stream), source)
        max_texts, labels = model_limits(model)
        output = _output(kind)(out, table, answer_columns(labels, options.probabilities))
        try:
            if resume:
                done = output.resume()
                skip_done(records, done, source, out)
                summary.resumed = len(done)
            else:
                output.start(force)
            total = count_records(source, kind, options.column) if options.progress else None
            with progress_bar(options.progress, total, summary.resumed) as bar:
                for rows in answered_in_order(model, records, max_texts, options.in_flight):
                    output.write(rows)
                    for _, outcome in rows:
                        summary.add(outcome)
                    bar.update(len(rows))
            output.finish()
        finally:
            output.close()
            summary.seconds = time.perf_counter() - start
    return summary


def explain_file(model: Model, source: str, options: BatchOptions) -> list[tuple[Record, Outcome]]:
    """Every row of `source` with its explanation (or error), in input order."""
    kind = format_of(source, options.kind)
    table = make_table(kind, options.column, source)
    with _reading(kind, source) as stream:
        records = read_through(table.read(stream), source)
        max_texts, _ = model_limits(model)
        rows: list[tuple[Record, Outcome]] = []
        total = count_records(source, kind, options.column) if options.progress else None
        with progress_bar(options.progress, total) as bar:
            for chunk in answered_in_order(model, records, max_texts, options.in_flight, explain=True):
                rows.extend(chunk)
                bar.update(len(chunk))
    return rows


def _reading(kind: str, source: str):
    """The input opened for its table: text, or bytes for Parquet."""
    if kind == "parquet":
        from client import parquet  # pyarrow: only for Parquet

        return parquet.reading(source)
    return reading(source)


def _output(kind: str) -> type:
    """Where a run's answers go: appended lines, or a Parquet file written whole."""
    if kind == "parquet":
        from client.parquet import ParquetOutput

        return ParquetOutput
    return Output


class _NoBar:
    def update(self, rows: int) -> None:
        pass


@contextmanager
def progress_bar(shown: bool, total: int | None, initial: int = 0) -> Iterator:
    """A tqdm bar on stderr counting rows, or, when not `shown`, one that shows nothing
    (tqdm is imported only for a bar: a sub-second run need not pay its import)."""
    if not shown:
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, initial=initial, unit="row", file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar
