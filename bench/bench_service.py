"""Load test of the web service on loopback: 50 concurrent clients polling a job's status while it trains.

Starts `tracesynth serve` on 127.0.0.1 (a free port, a fresh data folder), uploads the bundled sample,
then runs two phases of 50 clients polling GET /api/jobs/{id} back to back (closed loop, each phase
bounded by --seconds and --requests): idle (no job running), and while a job trains. Prints p50 / p99 /
max latency, throughput and the server's CPU time per request, and whether p99 meets the 200 ms target.

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams (one connection per client),
so that on a small machine the clients do not take the CPU the server is measured on (httpx's client
costs more per request than the server does). Usage:
    .venv/bin/python bench/bench_service.py [--seconds S] [--requests N] [--clients C]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
TARGET_P99_MS = 200.0


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


async def _poller(port: int, path: str, end: float, budget: list[int], latencies: list[float]) -> None:
    """One client: one keep-alive connection, GET `path` back to back until time or the budget runs out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        while time.perf_counter() < end and budget[0] > 0:
            budget[0] -= 1
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise SystemExit(f"GET {path} answered {status}")
    finally:
        writer.close()


async def hammer(port: int, path: str, seconds: float, requests: int, clients: int) -> tuple[list[float], float]:
    """`clients` concurrent pollers for at most `seconds` and `requests` in all; (latencies ms, wall s)."""
    latencies: list[float] = []
    budget = [requests]
    t0 = time.perf_counter()
    await asyncio.gather(*(_poller(port, path, t0 + seconds, budget, latencies) for _ in range(clients)))
    return latencies, time.perf_counter() - t0


def phase(name: str, pid: int, port: int, path: str, args: argparse.Namespace) -> float:
    cpu0 = cpu_seconds(pid)
    latencies, wall = asyncio.run(hammer(port, path, args.seconds, args.requests, args.clients))
    cpu = cpu_seconds(pid) - cpu0
    q = statistics.quantiles(latencies, n=100)
    p50, p99 = statistics.median(latencies), q[98]
    print(f"{name:<20} requests {len(latencies):>6}  {len(latencies) / wall:6.0f} req/s  p50 {p50:6.1f} ms  "
          f"p99 {p99:6.1f} ms  max {max(latencies):6.1f} ms  server CPU {1000 * cpu / len(latencies):.2f} ms/req")
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="longest time of each phase")
    parser.add_argument("--requests", type=int, default=20_000, help="most requests of each phase")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args()
    from tracesynth.data import sample_path

    parser_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop_impl = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "data")
        port = int(url.rsplit(":", 1)[1])
        try:
            api = httpx.Client(base_url=url, timeout=60)
            upload = api.post("/api/uploads", content=Path(sample_path()).read_bytes()).json()
            idle_job = api.post("/api/jobs", json={"upload_id": upload["id"], "epochs": 1}).json()
            api.post(f"/api/jobs/{idle_job['id']}/cancel")
            print(f"service load test: {args.clients} concurrent clients, at most {args.seconds:.0f} s and "
                  f"{args.requests} requests per phase, loopback, {os.cpu_count()} CPUs, uvicorn with "
                  f"{parser_impl} + {loop_impl}")
            p99_idle = phase("idle (no training)", proc.pid, port, f"/api/jobs/{idle_job['id']}", args)
            job = api.post("/api/jobs", json={"upload_id": upload["id"], "epochs": 400, "chunks": 1}).json()
            while api.get(f"/api/jobs/{job['id']}").json()["progress"].get("stage") != "train":
                time.sleep(0.5)
            p99_busy = phase("while a job trains", proc.pid, port, f"/api/jobs/{job['id']}", args)
            state = api.get(f"/api/jobs/{job['id']}").json()
            verdict = "meets" if p99_busy < TARGET_P99_MS else "misses"
            print(f"job still {state['status']} at epoch {state['progress'].get('epoch')} "
                  f"(stage {state['progress'].get('stage')}); p99 ratio busy/idle {p99_busy / p99_idle:.2f}; "
                  f"p99 while training {verdict} the {TARGET_P99_MS:.0f} ms target")
            api.delete(f"/api/jobs/{job['id']}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
