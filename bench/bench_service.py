"""Load test of the web service on loopback: 50 concurrent status requests for 30 s while a job trains.

Starts `tracesynth serve` on 127.0.0.1 (a free port, a fresh data folder), uploads the bundled sample,
starts a job big enough to train through the whole window, then keeps 50 clients polling
GET /api/jobs/{id} as fast as they can. Prints median / p99 / max latency and throughput, and an
idle baseline (same load, no job) for the ratio. Usage: .venv/bin/python bench/bench_service.py [--seconds S]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CLIENTS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from tracesynth.cli import main; sys.exit(main(sys.argv[1:]))",
           "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


async def hammer(url: str, path: str, seconds: float) -> list[float]:
    """CLIENTS concurrent loops of GET `path` for `seconds`; returns every latency in ms."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        end = time.perf_counter() + seconds

        async def loop() -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                r = await client.get(path)
                latencies.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()

        await asyncio.gather(*(loop() for _ in range(CLIENTS)))
    return latencies


def describe(name: str, latencies: list[float], seconds: float) -> float:
    q = statistics.quantiles(latencies, n=100)
    median, p99 = statistics.median(latencies), q[98]
    print(f"{name:<22} requests {len(latencies):>6}  {len(latencies) / seconds:7.0f} req/s  "
          f"median {median:6.1f} ms  p99 {p99:7.1f} ms  max {max(latencies):7.1f} ms")
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    from tracesynth.data import sample_path

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "data")
        try:
            api = httpx.Client(base_url=url, timeout=60)
            upload = api.post("/api/uploads", content=Path(sample_path()).read_bytes()).json()
            idle_job = api.post("/api/jobs", json={"upload_id": upload["id"], "epochs": 1}).json()
            api.post(f"/api/jobs/{idle_job['id']}/cancel")
            print(f"service load test: {CLIENTS} concurrent clients, {args.seconds:.0f} s per phase, "
                  f"loopback, {os.cpu_count()} CPUs")
            idle = asyncio.run(hammer(url, f"/api/jobs/{idle_job['id']}", args.seconds))
            p99_idle = describe("idle (no training)", idle, args.seconds)
            job = api.post("/api/jobs", json={"upload_id": upload["id"], "epochs": 400, "chunks": 1}).json()
            while api.get(f"/api/jobs/{job['id']}").json()["progress"].get("stage") != "train":
                time.sleep(0.5)
            busy = asyncio.run(hammer(url, f"/api/jobs/{job['id']}", args.seconds))
            state = api.get(f"/api/jobs/{job['id']}").json()
            p99_busy = describe("while a job trains", busy, args.seconds)
            print(f"job still {state['status']} at epoch {state['progress'].get('epoch')} "
                  f"(stage {state['progress'].get('stage')}); p99 ratio busy/idle {p99_busy / p99_idle:.2f}")
            api.delete(f"/api/jobs/{job['id']}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
