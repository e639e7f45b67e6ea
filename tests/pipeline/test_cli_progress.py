"""Progress with stderr redirected to a file: one plain line per training epoch (losses, flows/s, ETA),
at most one a minute for other long stages, nothing for short ones; the rich bar only on terminals."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import tracesynth
from tracesynth.cli._app import LOG_INTERVAL_S, ProgressLog, progress_bar
from tsdata import shared

TINY = ("preset: pcap\nchunking: {n_chunks: 1}\nflow_length: {max_flow_len: 10}\n"
        "training: {epochs: 3, batch_size: 50}\n"
        "model: {kind: doppelganger, sample_len: 5, attribute_num_units: 8, attribute_num_layers: 1, feature_num_units: 8,"
        " critic_num_units: 8, critic_num_layers: 1, attr_critic_num_units: 8, attr_critic_num_layers: 1}\n")
EPOCH_LINE = re.compile(r"^\[\d+:\d\d:\d\d\] fit train: epoch (\d+)/3, chunk 0, step \d+, d_loss \S+, g_loss \S+, "
                        r"attr_d_loss \S+, [\d,]+ flows/s, ETA \d+:\d\d:\d\d$")


def _cli(args: list[str], stderr_file: Path) -> subprocess.CompletedProcess:
    """`tracesynth ARGS` in a fresh interpreter running this checkout, stderr into a file (not a tty)."""
    env = {k: v for k, v in os.environ.items() if k != "TRACESYNTH_PROGRESS"}
    env["PYTHONPATH"] = str(Path(tracesynth.__file__).resolve().parents[1])
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(stderr_file, "w") as fh:
        return subprocess.run([sys.executable, "-c", "from tracesynth.cli import run; run()", *args],
                              stdout=subprocess.PIPE, stderr=fh, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """`tracesynth fit caida-1k ... 2> fit.log` with a tiny 3-epoch config."""
    folder = tmp_path_factory.mktemp("progress")
    (folder / "tiny.yaml").write_text(TINY)
    log = folder / "fit.log"
    proc = _cli(["fit", str(shared("caida/caida-1k.pcapng")), "--out", str(folder / "run"),
                 "--config", str(folder / "tiny.yaml"), "--workers", "1"], log)
    assert proc.returncode == 0, log.read_text()
    return folder / "run", log.read_text()


def test_fit_logs_one_plain_line_per_epoch_when_stderr_is_a_file(fitted):
    _, text = fitted
    assert "\x1b" not in text and "\r" not in text                   # no terminal control codes in a log
    epochs = [int(m.group(1)) for m in map(EPOCH_LINE.match, text.splitlines()) if m]
    assert epochs == [1, 2, 3], text
    last = [line for line in text.splitlines() if EPOCH_LINE.match(line)][-1]
    assert last.endswith("ETA 0:00:00")                               # nothing left after the last epoch


def test_a_short_generate_stays_silent_in_a_log(fitted, tmp_path):
    run, _ = fitted
    log = tmp_path / "generate.log"
    proc = _cli(["generate", str(run), "--out", str(tmp_path / "s.csv"), "--count", "300"], log)
    assert proc.returncode == 0 and "wrote 300 synthetic packets" in proc.stdout
    assert "generate:" not in log.read_text()                         # well under a minute: no line


def test_long_stages_log_at_most_one_line_a_minute(fitted, tmp_path):
    """The events of a real read and a real generate, replayed on a clock that moves 70 s per event:
    a line at most once a minute per stage (the last event too once the stage has logged), with the
    rate and the ETA measured from the stage's own progress."""
    from tracesynth import api, read_trace

    run, _ = fitted
    events = []
    read_trace(shared("caida/caida-1k.pcapng"), progress=events.append)
    api.generate_path(run, tmp_path / "s.csv", count=3000, progress=events.append)
    ticks = iter(range(0, 70 * (len(events) + 2), 70))
    buffer = io.StringIO()
    log = ProgressLog("generate", clock=lambda: float(next(ticks)),
                      console=Console(file=buffer, soft_wrap=True, width=200))
    for event in events:
        log(event)
    lines = buffer.getvalue().splitlines()
    read = [line for line in lines if " read: " in line]
    generate = [line for line in lines if "] generate: " in line]
    assert len(read) == 2 and read[0].endswith("ETA 0:01:10") and "(100%)" in read[-1]   # 50% at 550 B/s
    assert generate and all("records/s" in line and "ETA" in line for line in generate)
    assert generate[-1].split(": ")[1].startswith("3,000/3,000 records (100%)") and generate[-1].endswith("ETA 0:00:00")
    assert len(lines) == len(read) + len(generate) < len(events)      # the first event of a stage: no line
    for stage in (read, generate):
        seconds = [sum(int(x) * 60 ** i for i, x in enumerate(reversed(line[1:].split("]")[0].split(":"))))
                   for line in stage]
        assert all(b - a >= LOG_INTERVAL_S for a, b in zip(seconds, seconds[1:]))


def test_progress_bar_picks_lines_off_a_terminal_and_nothing_when_told(monkeypatch):
    monkeypatch.delenv("TRACESYNTH_PROGRESS", raising=False)
    with progress_bar("fit") as bar:                                  # pytest's stderr is not a terminal
        assert isinstance(bar, ProgressLog)
    monkeypatch.setenv("TRACESYNTH_PROGRESS", "0")
    with progress_bar("fit") as bar:
        assert bar is None
    with progress_bar("fit", enabled=False) as bar:
        assert bar is None
