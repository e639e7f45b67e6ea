"""What keeps status polling cheap (issue 14, item 10; figures from bench/bench_service.py in
docs/benchmarks.md): no thread-pool hop, no parse of the stored run configuration, workers that yield
the CPU to the web process. Structural checks only: no timed assertions."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys

from tracesynth.service.app import user_of


def _route(app, path: str, method: str = "GET"):
    return next(r for r in app.routes if getattr(r, "path", None) == path and method in r.methods)


def test_status_route_and_its_dependency_run_on_the_event_loop(idle_client):
    route = _route(idle_client.app, "/api/jobs/{job_id}")
    assert inspect.iscoroutinefunction(route.endpoint)
    assert inspect.iscoroutinefunction(user_of)


def test_status_reads_the_job_without_its_config(idle_client, sample):
    up = idle_client.post("/api/uploads", content=sample.read_bytes()).json()
    job = idle_client.post("/api/jobs", json={"upload_id": up["id"], "epochs": 3}).json()
    store = idle_client.app.state.store
    full, light = store.get_job(job["id"]), store.get_job(job["id"], config=False)
    assert "config" in full.params and "config" not in light.params
    assert {k: v for k, v in full.params.items() if k != "config"} == light.params
    assert [j.params for j in store.list_jobs(config=False)] == [light.params]
    polled = idle_client.get(f"/api/jobs/{job['id']}").json()
    assert polled == job and polled["params"]["epochs"] == 3


def test_worker_processes_run_at_lower_priority():
    code = ("import os; base = os.nice(0); from tracesynth.service import worker; worker._die_with_parent(); "
            "print(os.nice(0) - base)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    from tracesynth.service.worker import WORKER_NICE

    assert int(out.stdout) == min(WORKER_NICE, 19 - os.nice(0))
