"""Atomic file writes: write to a temporary name in the same folder, fsync, then rename.

An interrupted run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file for writing; it becomes `path` only when the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as fh:
            yield fh


def check_output_path(path: str | Path, what: str = "output", example: str = "out.csv") -> Path:
    """`path` as a Path, or a UserError (one line) when it cannot become a file: it is a folder, or a
    folder above it is a file. Called before long work, so a typo fails at once, not at the end."""
    from .errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: {what} is a folder; give a file name (e.g. {path / example})")
    _check_parents(path, what)
    return path


def check_output_folder(path: str | Path, what: str = "output folder") -> Path:
    """`path` as a Path, or a UserError when it cannot become a folder: a file is in the way."""
    from .errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: {what} exists and is a file; choose another name")
    _check_parents(path, what)
    return path


def _check_parents(path: Path, what: str) -> None:
    from .errors import UserError

    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{path}: cannot write the {what} there, {parent} is a file, not a folder")
            return
