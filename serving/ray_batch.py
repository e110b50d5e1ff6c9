"""`news-cnn predict --archive X.mar --ray --file PATH --out DIR`: the same scoring as the plain
command, as Ray Data's `map_batches` over a Dataset, on this machine or a Ray cluster.

PATH is a CSV or Parquet file, or a folder of them; DIR receives Parquet files: the input's
columns, then label, confidence, abstained, error (and prob_<class> with --probabilities).
`ray.init()` starts Ray here, or joins the cluster RAY_ADDRESS names. The archive's bytes go
through Ray's object store, so the nodes need the `news-cnn[ray]` package but not the file.
Each actor (`ArchiveScorer`) loads the archive once (serving/offline.py) and answers as the
plain command does: a refused headline gets its error, the others their answers.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from client.commands import ArchiveInProcess
from client.sending import answer_texts
from client.tables import InputError, Outcome, _sendable, answer_columns, answer_values
from serving.offline import OfflineModel
from serving.offline_pool import OFFLINE_MAX_TEXTS

# A scorer's share of a CPU in Ray's count (not a limit: it computes on a whole core). With one
# each, scorers on every core left none for the reads and writes, and a run could wait for ever.
SCORER_CPUS = 0.5
READERS = {".csv": "read_csv", ".parquet": "read_parquet"}


class ArchiveScorer:
    """One Ray worker of the actor pool, with the archive loaded once."""

    def __init__(self, archive: bytes, column: str, probabilities: bool) -> None:
        # The archive's bytes, written where this worker runs (a cluster's node may not see the
        # driver's files), kept until the worker ends.
        self._dir = tempfile.TemporaryDirectory(prefix="news_cnn_ray_")
        path = Path(self._dir.name) / "news_cnn.mar"
        path.write_bytes(archive)
        self.model = OfflineModel(path, handler_settings={"max_texts": OFFLINE_MAX_TEXTS})
        self.client = ArchiveInProcess(self.model)
        self.column = column
        self.columns = answer_columns(self.model.metadata()["labels"], probabilities)

    def __call__(self, batch):
        """`batch` (a pandas DataFrame) with the answer columns added."""
        sendable = [_sendable(value, self.column) for value in batch[self.column].tolist()]
        texts = [text for text, error in sendable if error is None]
        answered: list[Outcome] = []
        for start in range(0, len(texts), OFFLINE_MAX_TEXTS):
            answered.extend(answer_texts(self.client, texts[start:start + OFFLINE_MAX_TEXTS]))
        answers = iter(answered)
        outcomes = [Outcome(error=error) if error is not None else next(answers) for _, error in sendable]
        values = [answer_values(outcome, self.columns) for outcome in outcomes]
        for column in self.columns:
            batch[column] = [v[column] for v in values]
        return batch


def dataset_source(path: str) -> tuple[str, str]:
    """(Ray Data's reader, the path) for a CSV or Parquet file or a folder of them."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{path} does not exist: name a CSV or Parquet file, or a folder of them")
    files = [source] if source.is_file() else [p for p in source.iterdir() if p.is_file()]
    kinds = {p.suffix.lower() for p in files if not p.name.startswith((".", "_"))}
    if len(kinds) != 1 or not kinds <= set(READERS):
        raise InputError(f"{path} must be a .csv or .parquet file, or a folder of files of one of "
                         f"those kinds (found: {', '.join(sorted(kinds)) or 'no files'})")
    return READERS[kinds.pop()], str(source)


def predict_with_ray(archive: str | Path, source: str, out: str, column: str = "title",
                     probabilities: bool = False, workers: int | None = None) -> int:
    """Score every row of `source` into Parquet files in the folder `out`; returns how many
    rows were written. InputError on an input or output that cannot be used."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'news-cnn[ray]'") from None
    reader, path = dataset_source(source)
    if Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        raise InputError(f"{out} exists and is not an empty folder: name a new folder for the Parquet files")
    archive_bytes = Path(archive).read_bytes()
    ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False, include_dashboard=False,
             logging_level=logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and progress, every run
    try:
        context = ray.data.DataContext.get_current()
        # Blocks kept in the input's order (the files' order is still Ray's: join on an id column).
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        dataset = getattr(ray.data, reader)(path)
        if column not in dataset.schema().names:
            raise InputError(f"{source} has no column {column!r} (its columns: "
                             f"{', '.join(map(repr, dataset.schema().names))}): name it with --column")
        size = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        dataset.map_batches(
            ArchiveScorer, fn_constructor_args=(archive_bytes, column, probabilities),
            batch_size=OFFLINE_MAX_TEXTS * 8, batch_format="pandas", num_cpus=SCORER_CPUS,
            compute=ray.data.ActorPoolStrategy(size=size)).write_parquet(out)
    finally:
        # The run's own connection (and, locally, its own Ray) ends with it.
        ray.shutdown()
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in Path(out).glob("*.parquet"))
