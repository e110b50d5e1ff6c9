"""A file of headlines in, the same rows with their answers out, in input order.

One implementation for both ways of answering: the served model over REST (`NewsClient`)
and the archive run in this process (`news-cnn predict --archive`, client/commands.py); either is a
sending.Model. Rows are written as they are answered, whole rows only. A refusal of one
headline becomes its row's `error`; anything else (no answer after the client's retries, a
refused key, an unknown model) stops the run: the rows written so far stay, and `--resume`
finds where to go on (`Output.resume`).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from client.sending import DEFAULT_IN_FLIGHT, Model, answered_in_order, model_limits
from client.tables import (
    STDIO,
    InputError,
    Outcome,
    Record,
    TextTable,
    answer_columns,
    format_of,
    make_table,
    read_through,
    skip_done,
)

if TYPE_CHECKING:
    from client.parquet import ParquetTable


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
        if outcome.error is not None:
            self.refused += 1
        elif (outcome.answer or {}).get("label") is not None:
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
    kind: str | None = None  # csv, jsonl or parquet; None: from the input's suffix
    probabilities: bool = False
    in_flight: int = DEFAULT_IN_FLIGHT
    progress: bool = False  # a tqdm bar on stderr


def predict_file(model: Model, source: str, out: str, options: BatchOptions, resume: bool = False,
                 force: bool = False, summary: Summary | None = None) -> Summary:
    """Answer every row of `source` into `out` (see the module docstring); returns the
    counts, kept up to date in `summary` as rows are written.

    InputError when the input, or the output to resume, cannot be used; ClientError or
    rest.NoAnswer when the model stops answering (the rows written so far stay)."""
    kind = format_of(source, options.kind)
    if out != STDIO and Path(out).suffix.lower() in (".csv", ".jsonl", ".parquet") and format_of(out) != kind:
        raise InputError(f"the output {out} would be {kind} like the input: name it *.{kind}")
    if out != STDIO and source != STDIO and Path(out).resolve() == Path(source).resolve():
        raise InputError(f"the output {out} is the input: name another file")
    summary = summary if summary is not None else Summary()
    start = time.perf_counter()
    with _opened(model, source, options) as (table, records, max_texts, labels):
        output = table.output(out, answer_columns(labels, options.probabilities))
        try:
            if resume:
                done = output.resume()
                skip_done(records, done, source, out)
                summary.resumed = len(done)
            else:
                output.start(force)
            with _progress(options, table, summary.resumed) as bar:
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
    rows: list[tuple[Record, Outcome]] = []
    with _opened(model, source, options) as (table, records, max_texts, _), \
            _progress(options, table) as bar:
        for chunk in answered_in_order(model, records, max_texts, options.in_flight, explain=True):
            rows.extend(chunk)
            bar.update(len(chunk))
    return rows


@contextmanager
def _opened(model: Model, source: str, options: BatchOptions) -> Iterator[
        tuple[TextTable | ParquetTable, Iterator[Record], int, list[str]]]:
    """The input's table and its rows, once its header is read, and the model's max_texts
    and labels."""
    table = make_table(format_of(source, options.kind), options.column, source)
    with table.open_input() as stream:
        yield table, read_through(table.read(stream), source), *model_limits(model)


class _NoBar:
    def update(self, rows: int) -> None:
        pass


def _progress(options: BatchOptions, table: TextTable | ParquetTable,
              initial: int = 0) -> AbstractContextManager:
    """A tqdm bar on stderr counting rows with `options.progress`, else one that shows nothing
    (tqdm is imported only for a bar: a sub-second run need not pay its import)."""
    if not options.progress:
        return nullcontext(_NoBar())
    from tqdm import tqdm

    return tqdm(total=table.count(), initial=initial, unit="row", file=sys.stderr, dynamic_ncols=True)
