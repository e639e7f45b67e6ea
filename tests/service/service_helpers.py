"""Helpers shared by the service tests: tiny job settings, job polling, a real server subprocess."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

#: Config overrides that make a job finish in seconds on 2 cores (tiny networks, one cheap critic step).
TINY = {"model": {"kind": "doppelganger", "attribute_num_units": 16, "attribute_num_layers": 1, "feature_num_units": 16,
                  "critic_num_units": 16, "critic_num_layers": 1, "attr_critic_num_units": 16,
                  "attr_critic_num_layers": 1, "sample_len": 5},
        "flow_length": {"max_flow_len": 20},
        "training": {"batch_size": 64, "critic_steps": 1, "checkpoint_selection": False},
        "word2vec": {"epochs": 1}}


def wait_for(client, job_id: str, states: tuple[str, ...], timeout: float = 600.0,
             until=lambda job: True) -> dict:
    """Poll a job until it reaches one of `states` (and `until(job)` holds); fail with its last state.

    `timeout` only guards against a hang: job workers run at nice 10, so while the other test process
    trains on both cores a 30 s job can take minutes."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in states and until(job):
            return job
        if job["status"] in ("failed", "cancelled", "done", "interrupted") and job["status"] not in states:
            break
        time.sleep(0.3)
    log = client.get(f"/api/jobs/{job_id}/log").text[-2000:]
    raise AssertionError(f"job did not reach {states}: {json.dumps(job)[:1500]}\nworker log:\n{log}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`tracesynth serve` in a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-c", "import sys; from tracesynth.cli import main; sys.exit(main(sys.argv[1:]))",
               "serve", "--port", str(self.port), "--data-dir", str(data_dir), *extra]
        self.log = open(data_dir.parent / f"server-{self.port}.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: "
                                     f"{Path(self.log.name).read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/health", timeout=1).status_code in (200, 401):
                    return
            time.sleep(0.2)
        raise AssertionError("server did not start listening")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()




def pid_alive(pid: int) -> bool:
    """True while a process with this id exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
