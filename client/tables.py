"""Reading and writing tables of headlines: CSV (a header row) and JSON lines, stdin and
stdout, the answer columns, and an output to resume after its last whole row. Parquet's
table is client/parquet.py's; `make_table` picks one by format."""
from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from client.parquet import ParquetTable

# Columns added after the input's own, in this order; then PROBABILITY_PREFIX + each class.
ANSWER_COLUMNS = ("label", "confidence", "abstained", "error")
PROBABILITY_PREFIX = "prob_"
# Files are read and written with this error handler: bytes that are not UTF-8 come through
# unchanged in every column, and a headline holding them gets an error instead of a label.
ENCODING_ERRORS = "surrogateescape"
STDIO = "-"
FORMATS = ("csv", "jsonl", "parquet")
_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
               list: "a list", dict: "an object"}
_MISSING = object()


class InputError(ValueError):
    """The input, or the output to write or resume, cannot be used; the message says where."""


@dataclass
class Record:
    """One input row: its fields as read, and its headline (None when it cannot be sent,
    and then `error` says why)."""

    line: int
    fields: list[str] | dict
    text: str | None
    error: str | None = None


@dataclass
class Outcome:
    """What became of one row: the handler's answer, or why there is none."""

    answer: dict | None = None
    error: str | None = None


def format_of(path: str, given: str | None = None) -> str:
    """csv, jsonl or parquet: `given`, else from the file's suffix (.jsonl, .parquet), else csv."""
    if given:
        return given
    suffix = Path(path).suffix.lower() if path != STDIO else ""
    return {".jsonl": "jsonl", ".parquet": "parquet"}.get(suffix, "csv")


def make_table(kind: str, column: str, source: str) -> TextTable | ParquetTable:
    """The reader and writer of one format ("csv", "jsonl" or "parquet")."""
    if kind not in FORMATS:
        raise InputError(f"unknown format {kind!r}: use one of {', '.join(FORMATS)}")
    if kind == "parquet":
        from client.parquet import ParquetTable  # pyarrow: only for Parquet

        return ParquetTable(column, source)
    return CsvTable(column, source) if kind == "csv" else JsonlTable(column, source)


def open_text(path: str, mode: str) -> IO[str]:
    """A file, or stdin/stdout for "-", as text that round-trips any byte."""
    encoding = "utf-8-sig" if mode == "r" else "utf-8"
    if path == STDIO:
        stream = sys.stdin.buffer if mode == "r" else sys.stdout.buffer
        return io.TextIOWrapper(stream, encoding=encoding, errors=ENCODING_ERRORS, newline="",
                                write_through=True)
    return open(path, mode, encoding=encoding, errors=ENCODING_ERRORS, newline="")


def release(stream: IO[str], path: str) -> None:
    """Close a file; flush and let go of stdin/stdout without closing them (even when the
    flush fails: a reader that went away must not take sys.stdout down with it)."""
    if path != STDIO:
        stream.close()
        return
    try:
        stream.flush()
    finally:
        stream.detach()


def _sendable(value: object, column: str) -> tuple[str | None, str | None]:
    """(headline, None) when `value` can be sent, else (None, the row's error)."""
    if value is _MISSING:
        return None, f"missing_text: the row has no {column!r} field"
    if not isinstance(value, str):
        kind = _JSON_TYPES.get(type(value), type(value).__name__)
        return None, f"invalid_text: {column!r} is {kind}, not a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(value[err.start])
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape reads an undecodable byte b as U+DC00 + b
            return None, (f"invalid_utf8: the headline is not valid UTF-8 (byte 0x{code - 0xDC00:02x} "
                          f"at character {err.start}); it was not sent")
        # A JSON line may spell a lone surrogate (e.g. "\ud800"), which no UTF-8 text can hold.
        return None, (f"invalid_text: the headline holds a lone surrogate (U+{code:04X} at "
                      f"character {err.start}); it was not sent")
    return value, None


def _answer_named(names: Iterable[str]) -> str:
    """The names among `names` that the answers add, quoted and comma-separated ("" if none)."""
    return ", ".join(repr(n) for n in names if n in ANSWER_COLUMNS or n.startswith(PROBABILITY_PREFIX))


def check_header(source: str, column: str, columns: list[str]) -> None:
    """InputError unless `columns` (a table's header) holds the headlines' `column` and none
    of the columns the answers add."""
    if column not in columns:
        raise InputError(f"{source} has no column {column!r} (its columns: "
                         f"{', '.join(map(repr, columns))}): name the headlines' column with --column")
    if clashing := _answer_named(columns):
        raise InputError(f"{source} already has the column(s) {clashing} that the answers add: rename them")


class TextTable:
    """What CSV and JSON lines share: the input read as text (a file or stdin), the output
    written by `Output`, appended a whole row at a time. A subclass reads rows (`read`) and
    writes them (`header`, `lines`), and finds those an earlier run wrote (`written`)."""

    def __init__(self, column: str, source: str) -> None:
        self.column, self.source = column, source
        self.columns: list[str] = []  # the header's, once read (JSON lines have none)

    @contextmanager
    def open_input(self) -> Iterator[IO[str]]:
        """The input as text (stdin for "-"), InputError when it cannot be opened."""
        try:
            stream = open_text(self.source, "r")
        except OSError as err:
            raise InputError(f"cannot read {self.source}: {err.strerror or err}") from None
        try:
            yield stream
        finally:
            release(stream, self.source)

    def count(self) -> int | None:
        """How many rows a regular file holds (for the progress bar); None for stdin or when
        it cannot be read (reading it for real then says why)."""
        if self.source == STDIO or not Path(self.source).is_file():
            return None
        try:
            with open_text(self.source, "r") as stream:
                return sum(1 for _ in type(self)(self.column, self.source).read(stream))
        except (InputError, OSError):
            return None

    def output(self, path: str, columns: list[str]) -> Output:
        """Where the answered rows go, `columns` added to each."""
        return Output(path, self, columns)


class CsvTable(TextTable):
    """CSV: a header row naming the columns, then one row per headline."""

    def read(self, stream: IO[str]) -> Iterator[Record]:
        """The rows of `stream` after checking its header (InputError on what cannot be read)."""
        reader = csv.reader(stream)
        header = self._next(reader)
        if header is None:
            raise InputError(f"{self.source} is empty: it needs a header row with a "
                             f"{self.column!r} column")
        self.columns = header
        check_header(self.source, self.column, self.columns)
        return self._rows(reader, self.columns.index(self.column))

    def _next(self, reader) -> list[str] | None:  # noqa: ANN001 - a csv reader
        try:
            return next(reader, None)
        except csv.Error as err:
            raise InputError(f"{self.source}, line {reader.line_num}: {err}") from None

    def _rows(self, reader, index: int) -> Iterator[Record]:  # noqa: ANN001 - a csv reader
        while True:
            start = reader.line_num + 1
            if (row := self._next(reader)) is None:
                return
            if not row:
                continue  # a blank line
            if len(row) != len(self.columns):
                raise InputError(f"{self.source}, line {start}: {len(row)} fields where the header "
                                 f"has {len(self.columns)}")
            yield Record(start, row, *_sendable(row[index], self.column))

    def header(self, answer_columns: list[str]) -> str:
        """The output's first line."""
        return _csv_text([self.columns + answer_columns])

    def lines(self, rows: list[tuple[Record, dict]]) -> str:
        """Output rows: the input's fields unchanged, then the answer's."""
        # One CSV writer for them all: one per row made the offline run of 240,000 rows slower
        # (7.64-7.89 s against 7.38-7.72 s end to end, alternating runs, 2 shared cores).
        return _csv_text(record.fields + ["" if v is None else v for v in answer.values()]
                         for record, answer in rows)

    def written(self, text: str, answer_columns: list[str]) -> tuple[list[list[str]], int]:
        """The input fields of each whole row already in an output `text`, and the offset
        where the last one ends (a row cut off by an interruption is not counted)."""
        header = self.header(answer_columns)
        if not text.startswith(header):
            if header.startswith(text):
                return [], 0  # nothing, or a cut-off header
            raise InputError(f"its first line is not the header this run writes: "
                             f"{header.strip()!r}; use the options it was written with")
        done, end = [], len(header)
        width = len(self.columns) + len(answer_columns)
        try:
            for row in csv.reader(io.StringIO(text[end:])):
                line = _csv_text([row])
                if len(row) != width or not text.startswith(line, end):
                    break
                done.append(row[:len(self.columns)])
                end += len(line)
        except csv.Error:
            pass  # a row cut off inside its quotes
        return done, end


def _csv_text(rows: Iterable[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class JsonlTable(TextTable):
    """JSON lines: one object per line; the answers are added as keys after the input's."""

    def read(self, stream: IO[str]) -> Iterator[Record]:
        """The objects of `stream` (blank lines skipped; InputError on what cannot be read)."""
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as err:
                raise InputError(f"{self.source}, line {number}: not JSON ({err})") from None
            if not isinstance(value, dict):
                raise InputError(f"{self.source}, line {number}: not a JSON object")
            if clashing := _answer_named(value):
                raise InputError(f"{self.source}, line {number}: already has the key(s) {clashing} "
                                 f"that the answers add: rename them")
            yield Record(number, value, *_sendable(value.get(self.column, _MISSING), self.column))

    def header(self, answer_columns: list[str]) -> str:
        return ""

    def lines(self, rows: list[tuple[Record, dict]]) -> str:
        """Output lines: the input object's keys unchanged, then the answer's. A line whose
        text the output cannot hold (a lone surrogate read from a JSON escape) is written with
        JSON escapes instead, as it came in."""
        lines = []
        for record, answer in rows:
            line = json.dumps({**record.fields, **answer}, ensure_ascii=False) + "\n"
            try:
                line.encode("utf-8", ENCODING_ERRORS)
            except UnicodeEncodeError:
                line = json.dumps({**record.fields, **answer}) + "\n"
            lines.append(line)
        return "".join(lines)

    def written(self, text: str, answer_columns: list[str]) -> tuple[list[dict], int]:
        """The input part of each whole line already in an output `text`, and its end."""
        done, end = [], 0
        for line in text.splitlines(keepends=True):
            try:
                value = json.loads(line) if line.endswith("\n") else None
            except ValueError:
                value = None
            if not isinstance(value, dict):
                break
            if list(value)[-len(answer_columns):] != answer_columns:
                raise InputError(f"line {len(done) + 1} does not end with the keys this run "
                                 f"writes ({', '.join(answer_columns)}); use the options it was "
                                 f"written with")
            done.append({k: v for k, v in value.items() if k not in answer_columns})
            end += len(line)
        return done, end


def answer_columns(labels: list[str], probabilities: bool) -> list[str]:
    """The columns added to each row."""
    return list(ANSWER_COLUMNS) + ([PROBABILITY_PREFIX + c for c in labels] if probabilities else [])


def answer_values(outcome: Outcome, columns: list[str]) -> dict[str, object]:
    """The added columns' values for one row (None where empty)."""
    answer = outcome.answer or {}
    label = answer.get("label")
    probabilities = answer.get("probabilities") or {}
    values = {"label": label, "confidence": probabilities.get(label) if label else None,
              "abstained": answer.get("abstained"), "error": outcome.error}
    return {c: values[c] if c in values else probabilities.get(c[len(PROBABILITY_PREFIX):])
            for c in columns}


@dataclass
class Output:
    """Where answered rows go: the output file (or stdout), appended whole rows at a time."""

    path: str
    table: TextTable
    columns: list[str]
    stream: IO[str] | None = field(default=None, repr=False)

    def start(self, force: bool = False) -> None:
        """A new output: refuses to replace an existing file unless `force`."""
        if self.path != STDIO and Path(self.path).exists() and not force:
            raise InputError(f"{self.path} exists: --resume finishes it, --force replaces it")
        self.stream = open_text(self.path, "w")
        self._write(self.table.header(self.columns))

    def resume(self) -> list:
        """Reopen an earlier run's output after its last whole row; returns the input part
        of each row it holds (the caller checks them against the input)."""
        if self.path == STDIO:
            raise InputError("--resume needs an output file, not stdout")
        if not Path(self.path).exists():
            self.start()
            return []
        with open_text(self.path, "r") as stream:
            text = stream.read()
        try:
            done, end = self.table.written(text, self.columns)
        except InputError as err:
            raise InputError(f"cannot resume {self.path}: {err}") from None
        with open(self.path, "r+b") as raw:  # cut a row an interruption left half-written
            raw.truncate(len(text[:end].encode("utf-8", ENCODING_ERRORS)))
        self.stream = open_text(self.path, "a")
        if end == 0:
            self._write(self.table.header(self.columns))
        return done

    def finish(self) -> None:
        """Every row is answered (each is in the file already)."""

    def write(self, rows: list[tuple[Record, Outcome]]) -> None:
        """Append whole rows, then flush: what is in the file is always complete rows."""
        self._write(self.table.lines([(r, answer_values(o, self.columns)) for r, o in rows]))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            release(self.stream, self.path)
            self.stream = None


def skip_done(records: Iterator[Record], done: list, source: str, out: str) -> None:
    """Consume the input rows an earlier run already answered, checking they are the same."""
    for number, fields in enumerate(done, 1):
        record = next(records, None)
        if record is None or record.fields != fields:
            raise InputError(f"{out} does not continue {source}: its row {number} is not the "
                             f"input's row {number}; use a new --out, or the input it was made from")


def read_through(records: Iterator[Record], source: str) -> Iterator[Record]:
    """`records`, with a read failure half-way (a vanished file) reported as InputError."""
    try:
        yield from records
    except OSError as err:
        raise InputError(f"cannot read {source}: {err.strerror or err}") from None
