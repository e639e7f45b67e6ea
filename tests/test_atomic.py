"""Atomic writes and their leftovers (issue 14, item 8): a write killed with -9 leaves a hidden
`.NAME.PID@HOST.XXXX.part`; the next write of NAME, a resumed fit and a service start remove the ones
whose writer is gone (or, unowned, older than STALE_AGE_S), and never a live writer's."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tracesynth import _atomic
from tracesynth._atomic import atomic_open, clean_stale_parts, owner_tag

_KILLED_WRITER = """
import sys, time
from tracesynth._atomic import atomic_open
with atomic_open(sys.argv[1]) as fh:
    fh.write(b"x" * 1000); fh.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def _killed_write(path) -> None:
    """Start a real writer of `path`, kill it with SIGKILL mid-write: its temporary stays behind."""
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline() == b"writing\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _parts(folder):
    return sorted(p.name for p in folder.glob(".*.part"))


def test_next_write_removes_a_killed_writers_temporary(tmp_path):
    out = tmp_path / "synth.pcap"
    _killed_write(out)
    (left,) = _parts(tmp_path)
    assert left.startswith(".synth.pcap.") and not out.exists()
    with atomic_open(out) as fh:
        fh.write(b"done")
    assert out.read_bytes() == b"done" and _parts(tmp_path) == []


def test_a_live_writers_temporary_is_kept(tmp_path):
    """Another process (alive: this test's parent) is writing synth.pcap: its temporary stays."""
    live = tmp_path / f".synth.pcap.{os.getppid()}@{owner_tag().split('@')[1]}.abc123.part"
    live.write_bytes(b"in progress")
    with atomic_open(tmp_path / "synth.pcap") as fh:
        fh.write(b"other")
    assert clean_stale_parts(tmp_path) == 0
    assert _parts(tmp_path) == [live.name]


def test_unowned_temporaries_go_only_once_old(tmp_path):
    fresh, old = tmp_path / ".a.csv.k2j3.part", tmp_path / ".b.csv.9x8y.part"  # names before owner tags
    foreign = tmp_path / ".c.csv.123@otherhost.zz.part"                         # written on another machine
    for p in (fresh, old, foreign):
        p.write_bytes(b"x")
    past = time.time() - _atomic.STALE_AGE_S - 60
    os.utime(old, (past, past))
    os.utime(foreign, (past, past))
    assert clean_stale_parts(tmp_path) == 2
    assert _parts(tmp_path) == [fresh.name]


def test_resumed_fit_folder_and_names_with_glob_characters(tmp_path):
    out = tmp_path / "run[1].csv"
    _killed_write(out)
    with atomic_open(out) as fh:
        fh.write(b"ok")
    assert _parts(tmp_path) == []


def test_clean_is_recursive_on_request(tmp_path):
    deep = tmp_path / "jobs" / "j1" / "run"
    deep.mkdir(parents=True)
    _killed_write(deep / "chunk.pt")
    assert clean_stale_parts(tmp_path) == 0
    assert clean_stale_parts(tmp_path, recursive=True) == 1
    assert _parts(deep) == []


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_atomic_open_still_round_trips(tmp_path, mode):
    with atomic_open(tmp_path / "f.txt", mode) as fh:
        fh.write("hi" if mode == "w" else b"hi")
    assert (tmp_path / "f.txt").read_text() == "hi" and _parts(tmp_path) == []
