"""Atomic file writes: write to a temporary name in the same folder, fsync, then rename.

An interrupted run never leaves a half-written file under the final name. A run killed with -9 does
leave its hidden temporary (`.NAME.PID@HOST.XXXX.part`); the name says which process wrote it, so the
next write of NAME (and `clean_stale_parts` at a resume or a service start) removes temporaries whose
writer is gone, while a live writer's file is never touched.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)

#: A temporary whose writer cannot be identified (written by another machine, or by a version before
#: owner tags) counts as stale once it has not changed for this long.
STALE_AGE_S = 3600.0
#: The owner tag in a temporary's name: `.<name>.<pid>@<host>.<random>.part`
_OWNED = re.compile(r"\.(\d+)@([A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.part$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def owner_tag() -> str:
    """`PID@HOST` of this process, as it appears in the temporaries it writes."""
    return f"{os.getpid()}@{_host()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """True for a leftover temporary: its writer (on this host) is gone, or it is unowned and old."""
    match = _OWNED.search(path.name)
    if match and match.group(2) == _host():
        pid = int(match.group(1))
        return pid != os.getpid() and not _pid_alive(pid)
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_AGE_S


def clean_stale_parts(folder: str | Path, pattern: str = ".*.part", recursive: bool = False) -> int:
    """Remove stale hidden temporaries (`pattern`) in `folder` (and below, with `recursive`); return how
    many. Safe while other processes write there: only files `is_stale` calls leftovers go."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in (folder.rglob(pattern) if recursive else folder.glob(pattern)):
        if path.is_file() and is_stale(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    if removed:
        log.info("%s: removed %d leftover temporary file(s) of interrupted writes", folder, removed)
    return removed


def temporary_path(folder: Path, name: str) -> Path:
    """A fresh, empty hidden temporary `.NAME.PID@HOST.XXXX.part` in `folder` (created 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{owner_tag()}.", suffix=".part", dir=folder)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_parts(path.parent, f".{glob.escape(path.name)}.*.part")  # an earlier killed write of it
    tmp_path = temporary_path(path.parent, path.name)
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
