"""Jobs that really train in worker processes: a tiny job to completion, and cancelling a running job."""
from __future__ import annotations

import subprocess
import sys
import time

from service_helpers import TINY, pid_alive, wait_for

from tracesynth.io import read_trace


def test_tiny_job_runs_to_completion_in_a_worker(client, settings, sample, tmp_path):
    up = client.post("/api/uploads", content=sample.read_bytes()).json()
    job = client.post("/api/jobs", json={"upload_id": up["id"], "epochs": 2, "chunks": 1, "count": 400,
                                         "seed": 3, "overrides": TINY}).json()
    done = wait_for(client, job["id"], ("done",))
    assert done["outputs"]["synthetic"] == "synthetic.pcap"
    assert done["outputs"]["fit"]["epochs"] == 2 and done["attempt"] == 1
    assert done["pid"] is None and done["resumable"] is False
    # the web process never trains: serving the app does not even import the trainer (the job above ran
    # in a worker process; checked in a fresh interpreter because other tests share this one)
    probe = subprocess.run([sys.executable, "-c", "import sys; from tracesynth.service.app import create_app; "
                            "sys.exit(int('tracesynth.model.trainer' in sys.modules or 'torch' in sys.modules))"])
    assert probe.returncode == 0
    r = client.get(f"/api/jobs/{job['id']}/synthetic")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.tcpdump.pcap"
    assert f"synthetic-{job['id'][:8]}.pcap" in r.headers["content-disposition"]
    out = tmp_path / "downloaded.pcap"
    out.write_bytes(r.content)
    table = read_trace(out).table
    assert abs(len(table) - 400) <= 8  # --count within 2%
    report = client.get(f"/api/jobs/{job['id']}/report")
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert client.get("/api/health").json()["jobs"] == {"done": 1}
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert not (settings.jobs_dir / job["id"]).exists()


def test_cancel_stops_the_worker_and_resume_requeues(client, sample):
    up = client.post("/api/uploads", content=sample.read_bytes()).json()
    job = client.post("/api/jobs", json={"upload_id": up["id"], "epochs": 500, "chunks": 1,
                                         "overrides": TINY}).json()
    running = wait_for(client, job["id"], ("running",), until=lambda j: j["pid"] is not None)
    pid = running["pid"]
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["resumable"] is True
    deadline = time.monotonic() + 15
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(pid)
    time.sleep(1.0)  # a stopped worker must not write over the cancelled state
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"
    resumed = client.post(f"/api/jobs/{job['id']}/resume").json()
    assert resumed["status"] in ("queued", "running")
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert client.get("/api/health").json()["running"] == 0


def test_jobs_share_the_cores_for_generation(tmp_path):
    """Each job's generation gets cores // max_jobs threads (at least 1), unless the operator fixed them
    in the settings (`tracesynth serve` fills them from TRACESYNTH_GENERATE_THREADS/_DTYPE)."""
    from tracesynth._parallel import available_cores
    from tracesynth.runtime import GenerationOptions
    from tracesynth.service.jobs import job_options, worker_threads
    from tracesynth.service.settings import ServiceSettings

    cores = available_cores()
    assert worker_threads(1) == cores
    assert worker_threads(2) == max(1, cores // 2)
    assert worker_threads(cores + 5) == 1
    assert worker_threads(1, fixed=3) == worker_threads(4, fixed=3) == 3
    shared = ServiceSettings(data_dir=tmp_path, max_jobs=2)
    assert job_options(shared) == GenerationOptions(threads=max(1, cores // 2), precision="auto")
    fixed = ServiceSettings(data_dir=tmp_path, max_jobs=2, generation=GenerationOptions(3, "float32"))
    assert job_options(fixed) == GenerationOptions(threads=3, precision="float32")
