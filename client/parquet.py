"""Parquet tables of headlines: read a record batch at a time, written a row group at a time,
so that memory stays flat however long the file (pyarrow, imported only for Parquet).

A Parquet file cannot be appended to (its footer, written last, says where everything is), so
a Parquet output is written to a hidden `.NAME.partial` beside it and renamed to NAME when the
run has answered every row: a stopped run leaves no broken file and no NAME, and --resume is
refused (run the command again).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from client.tables import (
    PROBABILITY_PREFIX,
    STDIO,
    InputError,
    Outcome,
    Record,
    _sendable,
    answer_values,
    check_header,
)

try:  # the train extra's, not the client's: without it, Parquet is refused in one line
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:
    pa = pq = None

# Rows read per record batch, and written per row group: a few MB of headlines either way.
BATCH_ROWS = 16_384


def _need_pyarrow() -> None:
    if pa is None:
        raise InputError("Parquet needs pyarrow, which this Python lacks: pip install pyarrow")


class ParquetTable:
    """A Parquet file: its schema's columns, then one row per headline."""

    def __init__(self, column: str, source: str) -> None:
        self.column, self.source = column, source
        self.columns: list[str] = []
        self.schema = None  # the input's pyarrow schema, once read

    @contextmanager
    def open_input(self) -> Iterator[IO[bytes]]:
        """The input, opened as bytes (InputError for stdin or a file that cannot be opened)."""
        if self.source == STDIO:
            raise InputError("a Parquet input needs a file (its footer comes last): not stdin")
        try:
            stream = open(self.source, "rb")
        except OSError as err:
            raise InputError(f"cannot read {self.source}: {err.strerror or err}") from None
        with stream:
            yield stream

    def read(self, stream: IO[bytes]) -> Iterator[Record]:
        """The rows of `stream` (InputError when it is not Parquet or lacks the column)."""
        _need_pyarrow()
        try:
            parquet = pq.ParquetFile(stream)
        except (pa.ArrowException, OSError) as err:
            raise InputError(f"{self.source} is not a Parquet file: {err}") from None
        self.schema = parquet.schema_arrow
        self.columns = list(self.schema.names)
        check_header(self.source, self.column, self.columns)
        return self._rows(parquet)

    def _rows(self, parquet: pq.ParquetFile) -> Iterator[Record]:
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                for row in batch.to_pylist():
                    number += 1
                    yield Record(number, row, *_sendable(row[self.column], self.column))
        except pa.ArrowException as err:
            raise InputError(f"{self.source}, row {number + 1}: {err}") from None

    def count(self) -> int | None:
        """The rows of the file, from its footer (None when it cannot be read)."""
        try:
            return pq.ParquetFile(self.source).metadata.num_rows if Path(self.source).is_file() else None
        except Exception:  # noqa: BLE001 - reading it for real says why
            return None

    def output(self, path: str, columns: list[str]) -> ParquetOutput:
        """Where the answered rows go, `columns` added to each."""
        return ParquetOutput(path, self, columns)


def partial_path(path: str) -> Path:
    """Where a Parquet output is written until the run ends."""
    return Path(path).with_name(f".{Path(path).name}.partial")


@dataclass
class ParquetOutput:
    """A Parquet output: the input's columns with their types, then the answers'; written to
    `partial_path` and renamed by `finish` (see the module docstring)."""

    path: str
    table: ParquetTable
    columns: list[str]
    _rows: list[dict] = field(default_factory=list, repr=False)
    _writer: pq.ParquetWriter | None = field(default=None, repr=False)

    def start(self, force: bool = False) -> None:
        """A new output: refuses to replace an existing file unless `force`."""
        if self.path == STDIO:
            raise InputError("a Parquet output needs a file: name it with --out answers.parquet")
        if Path(self.path).exists() and not force:
            raise InputError(f"{self.path} exists: --force replaces it")
        _need_pyarrow()
        answers = [pa.field(c, pa.float64() if c == "confidence" or c.startswith(PROBABILITY_PREFIX)
                            else pa.string()) for c in self.columns]
        self._schema = pa.schema(list(self.table.schema) + answers)
        try:
            self._writer = pq.ParquetWriter(partial_path(self.path), self._schema)
        except OSError as err:
            raise InputError(f"cannot write {self.path}: {err}") from None

    def resume(self) -> list:
        """Refused: a Parquet file cannot be appended to, and a stopped run leaves none."""
        raise InputError(f"--resume cannot finish a Parquet output: a stopped run leaves no {self.path} "
                         f"(it is written whole at the end); run the command again without --resume")

    def write(self, rows: list[tuple[Record, Outcome]]) -> None:
        """Add whole rows; a row group is written every BATCH_ROWS rows."""
        self._rows.extend({**record.fields, **answer_values(outcome, self.columns)}
                          for record, outcome in rows)
        if len(self._rows) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def finish(self) -> None:
        """Every row is answered: write the rest and the footer, and give the file its name."""
        self._flush()
        self._writer.close()
        self._writer = None
        os.replace(partial_path(self.path), self.path)

    def close(self) -> None:
        """A run that did not finish leaves nothing: the partial file is removed."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            partial_path(self.path).unlink(missing_ok=True)
