"""Reading headlines: the seed's `title,category` CSV, canonical AG News CSVs, or a download.

Every problem with the input becomes a DataError that names the file and the row, so the
CLI can print it instead of a traceback.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from serving import rest
from training.errors import DataError


@dataclass(frozen=True)
class PublishedFile:
    """A file's published size and digests: a download must match all three."""

    size: int  # bytes; also the most a download may stream before it is abandoned
    md5: str
    sha256: str


# The canonical AG News CSVs, from the mirror torchtext uses. The MD5s are torchtext's; the
# sizes and SHA-256s are those Hugging Face `datasets` publishes for the same two URLs (its
# ag_news dataset_infos.json, "download_checksums").
AG_NEWS_URL = "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/"
AG_NEWS_FILES = {
    "train.csv": PublishedFile(29_470_338, "b1a00f826fdfbd249f79597b59e1dc12",
                               "76a0a2d2f92b286371fe4d4044640910a04a803fdd2538e0f3f29a5c6f6b672e"),
    "test.csv": PublishedFile(1_857_427, "d52ea96a97a2d943681189a97654912d",
                              "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699"),
}
DOWNLOAD_CHUNK = 1 << 20
# Class index (first column of the canonical CSVs) to class name.
AG_NEWS_CLASSES = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}

TITLE, CATEGORY = "title", "category"
# The name of the evaluation set (--eval-data) among the scored parts: "train", "val", "test".
EVAL = "eval"
# A stratified 70/15/15 split needs a few rows of every class in each part.
MIN_ROWS_PER_CLASS = 10
TRAIN_SHARE, VAL_SHARE, TEST_SHARE = 0.70, 0.15, 0.15
# A blocked split deals out twentieths: 14 to training, 3 to validation, 3 to test.
BLOCK_FOLDS = 20


@dataclass
class Headlines:
    """Headlines with their classes, and where they came from (for the manifest)."""

    frame: pd.DataFrame  # columns title, category
    path: str  # the file(s) read, comma-separated
    md5: str  # their MD5s, in the same order


@dataclass
class EvalSet:
    """Labelled headlines the final model is scored on, never trained or fitted on."""

    frame: pd.DataFrame  # columns title, category
    path: str
    md5: str


@dataclass
class Split:
    """The stratified train / validation / test parts, each with columns title, category."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def md5sum(path: str | Path) -> str:
    """The hex MD5 of a file, read in chunks."""
    return _digests(path)["md5"]


def _digests(path: str | Path) -> dict[str, str]:
    """The hex MD5 and SHA-256 of a file, read once in chunks."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def _matches(path: Path, expected: PublishedFile) -> bool:
    """The file has the published size, MD5 and SHA-256."""
    return (path.stat().st_size == expected.size
            and _digests(path) == {"md5": expected.md5, "sha256": expected.sha256})


def _decode(path: Path) -> str:
    """The file's text; non-UTF-8 bytes raise a DataError naming the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; pass an existing CSV with DATA=path/to/news.csv") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory; pass a CSV file with DATA=path/to/news.csv") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}: row {line} has bytes that are not UTF-8 "
                        f"(0x{raw[e.start]:02x}); re-save the file as UTF-8") from None


def _is_canonical(first_row: list[str]) -> bool:
    """Canonical AG News rows have no header: class index, title, description."""
    return len(first_row) == 3 and first_row[0].strip().isdigit()


def read_headlines(path: str | Path) -> pd.DataFrame:
    """Read a `title,category` CSV or a canonical AG News CSV into columns title, category.

    Row numbers in errors are the file's line numbers (the header is line 1).
    """
    path = Path(path)
    text = _decode(path)
    if not text.strip():
        raise DataError(f"{path} is empty; it needs a header 'title,category' and one row per headline")
    first_row = next(csv.reader(io.StringIO(text)))
    canonical = _is_canonical(first_row)
    try:
        if canonical:
            frame = pd.read_csv(io.StringIO(text), header=None, names=["label", TITLE, "description"],
                                dtype=str, keep_default_na=False)
        else:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: not a valid CSV ({e})") from None
    first_line = 1 if canonical else 2
    if canonical:
        frame[CATEGORY] = _class_names(frame["label"], path, first_line)
    else:
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        missing = [c for c in (TITLE, CATEGORY) if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} in the header "
                            f"(found: {', '.join(frame.columns)}); the first line must name "
                            f"'title,category', or use the canonical AG News format "
                            f"(no header: class index 1-4, title, description)")
    for column in (TITLE, CATEGORY):
        blank = frame[column].str.strip() == ""
        if blank.any():
            row = int(np.flatnonzero(blank.to_numpy())[0]) + first_line
            raise DataError(f"{path}: row {row} has an empty {column} "
                            f"({int(blank.sum())} such row(s)); fill it in or delete the row")
    frame = frame[[TITLE, CATEGORY]].copy()
    frame[CATEGORY] = frame[CATEGORY].str.strip()
    frame["row"] = np.arange(len(frame)) + first_line
    return frame.reset_index(drop=True)


def _class_names(labels: pd.Series, path: Path, first_line: int) -> pd.Series:
    """Map canonical class indices 1-4 to names; anything else is a DataError."""
    names = labels.str.strip().map(lambda v: AG_NEWS_CLASSES.get(int(v)) if v.isdigit() else None)
    bad = names.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: row {i + first_line} has class index {labels.iloc[i]!r}; "
                        f"canonical AG News rows start with 1-4")
    return names


def download_ag_news(cache_dir: str | Path, timeout: float = 30.0) -> list[Path]:
    """Download the canonical train/test CSVs into `cache_dir` (once); each must have its
    published size, MD5 and SHA-256."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, expected in AG_NEWS_FILES.items():
        target = cache / name
        if not (target.is_file() and _matches(target, expected)):
            _download(AG_NEWS_URL + name, target, expected, timeout)
        paths.append(target)
    return paths


def _download(url: str, target: Path, expected: PublishedFile, timeout: float) -> None:
    """Stream `url` into a partial file, abandoned (and deleted) as soon as it grows past the
    published size; renamed to `target` only if its size and both digests match."""
    partial = target.with_name(target.name + ".part")
    fallback = "pass a local CSV with DATA=path/to/news.csv"
    try:
        with rest.download(url, timeout) as response:
            announced = int(response.headers.get("Content-Length") or 0)
            if announced > expected.size:
                raise DataError(f"{url} announces {announced} bytes, more than the published "
                                f"{expected.size}: not the AG News file; {fallback}")
            written = 0
            with open(partial, "wb") as f:
                for chunk in response.chunks(DOWNLOAD_CHUNK):
                    written += len(chunk)
                    if written > expected.size:
                        raise DataError(f"{url} sent more than the published {expected.size} bytes: "
                                        f"download stopped, nothing kept; {fallback}")
                    f.write(chunk)
    except rest.CallFailed as e:
        partial.unlink(missing_ok=True)
        raise DataError(f"cannot download AG News from {url} ({type(e).__name__}); the network "
                        f"looks unreachable. Pass a local CSV instead: make train "
                        f"DATA=path/to/news.csv (or python -m training --data path/to/news.csv)") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    actual = _digests(partial)
    for kind in ("md5", "sha256"):
        if actual[kind] != getattr(expected, kind):
            partial.unlink(missing_ok=True)
            raise DataError(f"downloaded {url} has {kind.upper()} {actual[kind]}, expected "
                            f"{getattr(expected, kind)}: the file is corrupt or changed; try again "
                            f"later or {fallback}")
    partial.replace(target)


def load_headlines(data: str | None, cache_dir: str | Path) -> Headlines:
    """Read `data`, or download and read the canonical AG News CSVs when `data` is None."""
    paths = [Path(data)] if data else download_ag_news(cache_dir)
    frames = [read_headlines(p) for p in paths]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return Headlines(frame=frame, path=",".join(str(p) for p in paths),
                     md5=",".join(md5sum(p) for p in paths))


def read_eval_set(path: str | Path, training: pd.DataFrame) -> EvalSet:
    """Read the evaluation set; every class in it must be one of `training`'s classes."""
    frame = read_headlines(path)
    unknown = sorted(set(frame[CATEGORY]) - set(training[CATEGORY]))
    if unknown:
        first_row = int(frame.loc[frame[CATEGORY] == unknown[0], "row"].iloc[0])
        raise DataError(f"{path}: class {unknown[0]!r} (first at row {first_row}) is not in the "
                        f"training data, whose classes are {', '.join(sorted(set(training[CATEGORY])))}; "
                        f"remove those rows or rename the class")
    return EvalSet(frame=frame, path=str(path), md5=md5sum(path))


def check_stratifiable(frame: pd.DataFrame, path: str) -> None:
    """Every class needs MIN_ROWS_PER_CLASS rows, and there must be at least two classes."""
    counts = frame[CATEGORY].value_counts()
    if len(counts) < 2:
        raise DataError(f"{path}: only one class ({counts.index[0]!r}); a classifier needs at least two")
    small = counts[counts < MIN_ROWS_PER_CLASS]
    if len(small):
        name, count = small.index[0], int(small.iloc[0])
        first_row = int(frame.loc[frame[CATEGORY] == name, "row"].iloc[0])
        raise DataError(f"{path}: class {name!r} has only {count} row(s) (first at row {first_row}); "
                        f"a stratified 70/15/15 split needs at least {MIN_ROWS_PER_CLASS} per class: "
                        f"add rows or remove the class")


def sample(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """A stratified sample of at most `max_rows` rows (all rows when None or larger)."""
    if max_rows is None or max_rows >= len(frame):
        return frame
    keep, _ = train_test_split(np.arange(len(frame)), train_size=max_rows, random_state=seed,
                               stratify=np.asarray(frame[CATEGORY], dtype=object))
    return frame.iloc[np.sort(keep)].reset_index(drop=True)


def split(frame: pd.DataFrame, seed: int, block: int = 0) -> Split:
    """Stratified 70/15/15 train / validation / test split with a fixed seed; each part keeps
    the file's row order.

    With `block` > 0 the split is blocked: runs of `block` consecutive rows stay together in
    one part (`blocked_folds`). A headline collection in time order has its stories in
    runs of rows, so validation and test then ask about stories the training rows lack, as
    headlines from another month do. With 0, rows are dealt out one by one.
    """
    labels = np.asarray(frame[CATEGORY], dtype=object)
    if block > 0:
        twentieths = blocked_folds(labels, BLOCK_FOLDS, block, seed)
        train_idx, val_idx, test_idx = (np.concatenate(twentieths[a:b])
                                        for a, b in ((0, 14), (14, 17), (17, BLOCK_FOLDS)))
    else:
        index = np.arange(len(frame))
        train_idx, rest_idx = train_test_split(index, train_size=TRAIN_SHARE, random_state=seed,
                                               stratify=labels)
        val_idx, test_idx = train_test_split(rest_idx, test_size=TEST_SHARE / (VAL_SHARE + TEST_SHARE),
                                             random_state=seed, stratify=labels[rest_idx])

    def part(idx: np.ndarray) -> pd.DataFrame:
        return frame.iloc[np.sort(idx)].reset_index(drop=True)

    return Split(train=part(train_idx), val=part(val_idx), test=part(test_idx))


def blocked_folds(labels: np.ndarray, folds: int, block: int, seed: int) -> list[np.ndarray]:
    """Row indices of `folds` stratified folds made of whole runs of `block` consecutive rows
    (fewer rows per run when there are too few runs for the folds)."""
    block = max(1, min(block, len(labels) // folds))
    groups = np.arange(len(labels)) // block
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [held_out for _, held_out in splitter.split(np.zeros(len(labels)), labels, groups)]
