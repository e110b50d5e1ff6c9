"""A file of headlines in, the same rows with their answers out, in input order.

One implementation for both ways of answering: the served model over REST (`NewsClient`)
and the archive run in this process (serving/offline.py, reached through the `news-cnn`
console). Either is a `Model`: `send(body, explain)` posts one JSON body and returns the
answer, or raises `ClientError` carrying the handler's status and JSON error.

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

import csv
import io
import json
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from client.api import ClientError, KeyRefused, ServerFailure

# Columns added after the input's own, in this order; then PROBABILITY_PREFIX + each class.
ANSWER_COLUMNS = ("label", "confidence", "abstained", "error")
PROBABILITY_PREFIX = "prob_"
# TorchServe answers requests that arrive together in one forward pass (batchSize in
# model-config.yaml), so more requests out means bigger passes (docs/batch.md has the figures
# for 4 and 8); 8 takes most of the gain without crowding out other clients of the server.
DEFAULT_IN_FLIGHT = 8
# How long a stopped run waits for the requests it still has out (see `answered`).
STOP_WAIT_S = 5.0
# Statuses of a refusal that concerns what the request holds (a headline empty or too long,
# too many headlines, a body over TorchServe's max_request_size), not the server or the key.
REFUSAL_STATUSES = frozenset({400, 413})
# Files are read and written with this error handler: bytes that are not UTF-8 come through
# unchanged in every column, and a headline holding them gets an error instead of a label.
ENCODING_ERRORS = "surrogateescape"
STDIO = "-"
FORMATS = ("csv", "jsonl")


class InputError(ValueError):
    """The input, or the output to write or resume, cannot be used; the message says where."""


class Model(Protocol):
    """What answers headlines: NewsClient over REST, or the archive in this process."""

    def send(self, body: dict, explain: bool = False) -> object:
        """The answer to one JSON body ({"text"} or {"texts"}), or ClientError."""

    def metadata(self) -> dict:
        """The handler's description of itself: `labels`, `max_texts`, ..."""


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


def model_limits(model: Model) -> tuple[int, list[str]]:
    """(max_texts, labels): the handler's own limit on headlines per request, and its classes."""
    metadata = model.metadata()
    try:
        return int(metadata["max_texts"]), [str(c) for c in metadata["labels"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ClientError(f"the model's metadata lacks max_texts or labels ({err!r}): {metadata}") from None


# -- answering -----------------------------------------------------------------------------

def _refused(err: ClientError) -> bool:
    """Whether the handler refused the request for what it holds (not the server, the key,
    or the address)."""
    if isinstance(err, (ServerFailure, KeyRefused)) or err.status not in REFUSAL_STATUSES:
        return False
    return err.status == 413 or (isinstance(err.body, dict) and "error" in err.body)


def _reason(err: ClientError) -> str:
    """A refusal as its row's error: "<code>: <message>" from the handler's JSON body."""
    body = err.body
    if isinstance(body, dict) and "error" in body and "message" in body:
        return f"{body['error']}: {body['message']}"
    return str(err)


def answer_one(model: Model, text: str, explain: bool = False) -> Outcome:
    """One headline sent alone ({"text": ...}, so a refusal speaks of "the headline")."""
    try:
        answer = model.send({"text": text}, explain)
    except ClientError as err:
        if not _refused(err):
            raise
        return Outcome(error=_reason(err))
    if not isinstance(answer, dict):
        raise ServerFailure(f"the answer to one headline is not a JSON object: {str(answer)[:200]}")
    return Outcome(answer=answer)


def answer_texts(model: Model, texts: list[str], explain: bool = False) -> list[Outcome]:
    """One outcome per headline, in order: answers, and refusals of single headlines."""
    if not texts:
        return []
    try:
        answers = model.send({"texts": list(texts)}, explain)
    except ClientError as err:
        if not _refused(err):
            raise
        index = err.body.get("index") if isinstance(err.body, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(texts):
            return (answer_texts(model, texts[:index], explain) + [answer_one(model, texts[index], explain)]
                    + answer_texts(model, texts[index + 1:], explain))
        if len(texts) == 1:
            return [answer_one(model, texts[0], explain)]
        half = len(texts) // 2
        return answer_texts(model, texts[:half], explain) + answer_texts(model, texts[half:], explain)
    if not isinstance(answers, list) or len(answers) != len(texts):
        raise ServerFailure(f"the answer to {len(texts)} headlines is not a list of {len(texts)}")
    return [Outcome(answer=a) for a in answers]


def _answer_records(model: Model, chunk: list[Record], explain: bool) -> list[Outcome]:
    answers = iter(answer_texts(model, [r.text for r in chunk if r.error is None], explain))
    return [Outcome(error=r.error) if r.error is not None else next(answers) for r in chunk]


def answered(model: Model, records: Iterable[Record], max_texts: int, in_flight: int = DEFAULT_IN_FLIGHT,
             explain: bool = False) -> Iterator[list[tuple[Record, Outcome]]]:
    """Chunks of up to `max_texts` records with their outcomes, in input order, while up to
    `in_flight` requests are out. When this stops early (an error, an interruption), nothing
    more is sent, and the answers to the requests still out are not written."""
    if max_texts < 1 or in_flight < 1:
        raise ValueError(f"max_texts and in_flight must be positive, not {max_texts} and {in_flight}")
    pending: deque[tuple[list[Record], Future]] = deque()
    stopped = threading.Event()
    model = _UntilStopped(model, stopped)
    senders = _Senders(in_flight)
    try:
        for chunk in _chunks(records, max_texts):
            pending.append((chunk, senders.submit(_answer_records, model, chunk, explain)))
            if len(pending) >= in_flight:
                yield _oldest(pending)
        while pending:
            yield _oldest(pending)
    finally:
        # Stopped early: send nothing more (a chunk still out splits no further), and let the
        # requests still out end, so that a model computing in this process is not cut off
        # by the interpreter's exit (torch aborts), but wait no longer than STOP_WAIT_S for a
        # server that does not answer.
        stopped.set()
        try:
            for _, future in pending:
                future.cancel()  # succeeds only for one that no thread has taken yet
            wait([future for _, future in pending], timeout=STOP_WAIT_S)
        finally:
            senders.close()


class RunStopped(Exception):
    """A request of a run that has stopped: it is not sent."""


class _UntilStopped:
    """`model`, sending nothing once `stopped` is set."""

    def __init__(self, model: Model, stopped: threading.Event) -> None:
        self.model, self.stopped = model, stopped

    def send(self, body: dict, explain: bool = False) -> object:
        if self.stopped.is_set():
            raise RunStopped("the run has stopped")
        return self.model.send(body, explain)

    def metadata(self) -> dict:
        return self.model.metadata()


def _oldest(pending: deque[tuple[list[Record], Future]]) -> list[tuple[Record, Outcome]]:
    """The first pending chunk with its outcomes, once answered (it stays pending until then)."""
    chunk, future = pending[0]
    outcomes = future.result()
    pending.popleft()
    return list(zip(chunk, outcomes, strict=True))


class _Senders:
    """`count` daemon threads that run submitted calls, each returning a Future.

    Started once per run: a thread per request cost about a millisecond each to start on a
    busy 2-core machine, time the run waited for before sending the next request. Daemon
    threads: one still waiting on a hung server when the run stops does not hold the process
    (a ThreadPoolExecutor's threads would, at exit)."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._count = count
        for _ in range(count):
            threading.Thread(target=self._work, daemon=True, name="news-cnn-request").start()

    def submit(self, function, *args) -> Future:
        """`function(*args)` on the next free thread; its result or exception in the Future."""
        future: Future = Future()
        self._jobs.put((future, function, args))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, function, args = job
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            try:
                future.set_result(function(*args))
            except BaseException as err:  # noqa: BLE001 - handed to the caller by result()
                future.set_exception(err)

    def close(self) -> None:
        """Let every thread end once it has run what it took."""
        for _ in range(self._count):
            self._jobs.put(None)


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- reading -------------------------------------------------------------------------------

def format_of(path: str, given: str | None = None) -> str:
    """csv or jsonl: `given`, else from the file's suffix (.jsonl), else csv."""
    if given:
        return given
    return "jsonl" if path != STDIO and Path(path).suffix.lower() == ".jsonl" else "csv"


def open_text(path: str, mode: str) -> IO[str]:
    """A file, or stdin/stdout for "-", as text that round-trips any byte."""
    reading = mode == "r"
    if path == STDIO:
        stream = sys.stdin.buffer if reading else sys.stdout.buffer
        return io.TextIOWrapper(stream, encoding="utf-8-sig" if reading else "utf-8",
                                errors=ENCODING_ERRORS, newline="", write_through=True)
    return open(path, mode, encoding="utf-8-sig" if reading else "utf-8", errors=ENCODING_ERRORS,
                newline="")


_MISSING = object()


def _sendable(value: object, column: str) -> tuple[str | None, str | None]:
    """(headline, None) when `value` can be sent, else (None, the row's error)."""
    if value is _MISSING:
        return None, f"missing_text: the row has no {column!r} field"
    if not isinstance(value, str):
        return None, f"invalid_text: {column!r} is {_json_type(value)}, not a string"
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


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _taken(names: Iterable[str]) -> list[str]:
    return [n for n in names if n in ANSWER_COLUMNS or n.startswith(PROBABILITY_PREFIX)]


class CsvTable:
    """CSV: a header row naming the columns, then one row per headline."""

    def __init__(self, column: str, source: str) -> None:
        self.column, self.source = column, source
        self.columns: list[str] = []

    def read(self, stream: IO[str]) -> Iterator[Record]:
        """The rows of `stream` after checking its header (InputError on what cannot be read)."""
        reader = csv.reader(stream)
        try:
            self.columns = next(reader)
        except StopIteration:
            raise InputError(f"{self.source} is empty: it needs a header row with a "
                             f"{self.column!r} column") from None
        except csv.Error as err:
            raise InputError(f"{self.source}, line {reader.line_num}: {err}") from None
        if self.column not in self.columns:
            raise InputError(f"{self.source} has no column {self.column!r} (its columns: "
                             f"{', '.join(map(repr, self.columns))}): name the headlines' column "
                             f"with --column")
        if _taken(self.columns):
            raise InputError(f"{self.source} already has the column(s) "
                             f"{', '.join(map(repr, _taken(self.columns)))} that the answers add: "
                             f"rename them")
        return self._rows(reader, self.columns.index(self.column))

    def _rows(self, reader, index: int) -> Iterator[Record]:
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise InputError(f"{self.source}, line {reader.line_num}: {err}") from None
            if not row:
                continue  # a blank line
            if len(row) != len(self.columns):
                raise InputError(f"{self.source}, line {start}: {len(row)} fields where the header "
                                 f"has {len(self.columns)}")
            yield Record(start, row, *_sendable(row[index], self.column))

    def header(self, answer_columns: list[str]) -> str:
        """The output's first line."""
        return _csv_line(self.columns + answer_columns)

    def line(self, record: Record, answer: dict) -> str:
        """One output row: the input's fields unchanged, then the answer's."""
        return _csv_line(record.fields + ["" if v is None else v for v in answer.values()])

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
        reader = csv.reader(io.StringIO(text[end:]))
        width = len(self.columns) + len(answer_columns)
        while True:
            try:
                row = next(reader)
            except (StopIteration, csv.Error):
                break
            line = _csv_line(row)
            if len(row) != width or not text.startswith(line, end):
                break
            done.append(row[:len(self.columns)])
            end += len(line)
        return done, end


def _csv_line(fields: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


class JsonlTable:
    """JSON lines: one object per line; the answers are added as keys after the input's."""

    def __init__(self, column: str, source: str) -> None:
        self.column, self.source = column, source
        self.columns: list[str] = []  # JSON lines have no header

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
            if _taken(value):
                raise InputError(f"{self.source}, line {number}: already has the key(s) "
                                 f"{', '.join(map(repr, _taken(value)))} that the answers add: "
                                 f"rename them")
            yield Record(number, value, *_sendable(value.get(self.column, _MISSING), self.column))

    def header(self, answer_columns: list[str]) -> str:
        return ""

    def line(self, record: Record, answer: dict) -> str:
        """One output line: the input object's keys unchanged, then the answer's. A line whose
        text the output cannot hold (a lone surrogate read from a JSON escape) is written with
        JSON escapes instead, as it came in."""
        text = json.dumps({**record.fields, **answer}, ensure_ascii=False) + "\n"
        try:
            text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            text = json.dumps({**record.fields, **answer}) + "\n"
        return text

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


def make_table(kind: str, column: str, source: str) -> CsvTable | JsonlTable:
    """The reader and writer of one format ("csv" or "jsonl")."""
    if kind not in FORMATS:
        raise InputError(f"unknown format {kind!r}: use one of {', '.join(FORMATS)}")
    return CsvTable(column, source) if kind == "csv" else JsonlTable(column, source)


def count_records(path: str, kind: str, column: str) -> int | None:
    """How many rows a regular file holds (for the progress bar); None for stdin or when
    it cannot be read (reading it for real then says why)."""
    if path == STDIO or not Path(path).is_file():
        return None
    try:
        with open_text(path, "r") as stream:
            return sum(1 for _ in make_table(kind, column, path).read(stream))
    except (InputError, OSError):
        return None


# -- writing -------------------------------------------------------------------------------

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
    table: CsvTable | JsonlTable
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

    def write(self, rows: list[tuple[Record, Outcome]]) -> None:
        """Append whole rows, then flush: what is in the file is always complete rows."""
        self._write("".join(self.table.line(r, answer_values(o, self.columns)) for r, o in rows))

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
    if out != STDIO and Path(out).suffix.lower() in (".csv", ".jsonl") and format_of(out) != kind:
        raise InputError(f"the output {out} would be {kind} like the input: name it *.{kind}")
    if out != STDIO and source != STDIO and Path(out).resolve() == Path(source).resolve():
        raise InputError(f"the output {out} is the input: name another file")
    table = make_table(kind, options.column, source)
    summary = summary if summary is not None else Summary()
    start = time.perf_counter()
    with reading(source) as stream:
        records = _readable(table.read(stream), source)
        max_texts, labels = model_limits(model)
        output = Output(out, table, answer_columns(labels, options.probabilities))
        try:
            if resume:
                done = output.resume()
                skip_done(records, done, source, out)
                summary.resumed = len(done)
            else:
                output.start(force)
            total = count_records(source, kind, options.column) if options.progress else None
            with progress_bar(options.progress, total, summary.resumed) as bar:
                for rows in answered(model, records, max_texts, options.in_flight):
                    output.write(rows)
                    for _, outcome in rows:
                        summary.add(outcome)
                    bar.update(len(rows))
        finally:
            output.close()
            summary.seconds = time.perf_counter() - start
    return summary


def explain_file(model: Model, source: str, options: BatchOptions) -> list[tuple[Record, Outcome]]:
    """Every row of `source` with its explanation (or error), in input order."""
    kind = format_of(source, options.kind)
    table = make_table(kind, options.column, source)
    with reading(source) as stream:
        records = _readable(table.read(stream), source)
        max_texts, _ = model_limits(model)
        rows: list[tuple[Record, Outcome]] = []
        total = count_records(source, kind, options.column) if options.progress else None
        with progress_bar(options.progress, total) as bar:
            for chunk in answered(model, records, max_texts, options.in_flight, explain=True):
                rows.extend(chunk)
                bar.update(len(chunk))
    return rows


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


@contextmanager
def reading(path: str) -> Iterator[IO[str]]:
    """The input as text (stdin for "-"), InputError when it cannot be opened."""
    try:
        stream = open_text(path, "r")
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        yield stream
    finally:
        release(stream, path)


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


def _readable(records: Iterator[Record], source: str) -> Iterator[Record]:
    """`records`, with a read failure half-way (a vanished file) reported as InputError."""
    try:
        yield from records
    except OSError as err:
        raise InputError(f"cannot read {source}: {err.strerror or err}") from None
