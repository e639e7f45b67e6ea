"""A server killed with SIGKILL mid-job: its worker dies too, the restarted server marks the job
interrupted and resumable, and resuming finishes it from the run folder's checkpoints."""
from __future__ import annotations

import time

import httpx

import pytest

from service_helpers import TINY, pid_alive, wait_for

pytestmark = pytest.mark.slow


def test_kill_server_mid_job_then_resume(server_factory, sample):
    server = server_factory("--max-jobs", "1")
    api = httpx.Client(base_url=server.url, timeout=30)
    up = api.post("/api/uploads", content=sample.read_bytes()).json()
    tiny = {**TINY, "training": {**TINY["training"], "checkpoint_every": 1}}
    job = api.post("/api/jobs", json={"upload_id": up["id"], "epochs": 40, "chunks": 1, "count": 300,
                                      "overrides": tiny}).json()
    # wait until at least two epochs (two checkpoints) are behind it
    running = wait_for(api, job["id"], ("running",), until=lambda j: (j["progress"].get("epoch") or 0) >= 2)
    worker = running["pid"]
    server.kill9()
    deadline = time.monotonic() + 15
    while pid_alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(worker), "the worker outlived its server"

    server = server_factory("--max-jobs", "1")
    api = httpx.Client(base_url=server.url, timeout=30)
    listed = {j["id"]: j for j in api.get("/api/jobs").json()}
    assert listed[job["id"]]["status"] == "interrupted"
    assert listed[job["id"]]["resumable"] is True
    assert "resume" in listed[job["id"]]["error"]
    assert api.post(f"/api/jobs/{job['id']}/resume").json()["status"] in ("queued", "running")
    done = wait_for(api, job["id"], ("done",))
    assert done["attempt"] == 2
    assert done["outputs"]["fit"]["resumed"] is True
    assert abs(done["outputs"]["records"] - 300) <= 6
    assert api.get(f"/api/jobs/{job['id']}/synthetic").status_code == 200
