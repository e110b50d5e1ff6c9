"""Writing the artifact directory all at once: into a temporary sibling, renamed at the end,
so a failed run never leaves a half-written set and never loses the previous one."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from training.errors import ConfigError


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside `target`; on success it replaces `target`,
    on any exception it is deleted and `target` is left as it was."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {target} is a file; pass a directory path")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
    staging.chmod(0o755)  # mkdtemp makes it owner-only
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
