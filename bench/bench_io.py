"""Packet I/O throughput: tracesynth read (pcap, pcapng) and write vs dpkt's full parse; peak memory.

Run: .venv/bin/python bench/bench_io.py [n_packets]   (default 1,000,000, tiled from caida-10k)
"""
from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tile import make_tiled_pcapng, tiled_table  # noqa: E402

DPKT_SUBSET = 100_000


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def dpkt_rate(path: Path, limit: int) -> float:
    """Packets/s of dpkt.pcap.Reader + dpkt.ip.IP decode (fields touched) over the first `limit` packets."""
    import dpkt

    t0 = time.perf_counter()
    n = 0
    with open(path, "rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ip.IP(buf)
            l4 = ip.data
            _ = (ts, ip.src, ip.dst, ip.len, ip.tos, ip.id, ip.ttl, ip.p, getattr(l4, "sport", 0))
            n += 1
            if n >= limit:
                break
    return n / (time.perf_counter() - t0)


def main(n_packets: int = 1_000_000) -> None:
    from tracesynth.io import _walk
    from tracesynth.io.pcap import read_packets
    from tracesynth.io.pcap_writer import write_pcap

    table = tiled_table(n_packets)
    with tempfile.TemporaryDirectory() as tmp:
        pcap, pcapng = Path(tmp) / "tiled.pcap", Path(tmp) / "tiled.pcapng"
        t_write = best_of(lambda: write_pcap(table, pcap))
        make_tiled_pcapng(pcapng, copies=max(1, n_packets // 10_000))
        read_packets(pcap), read_packets(pcapng)  # warm-up: numba cache, page cache
        t_read = best_of(lambda: read_packets(pcap))
        t_ng = best_of(lambda: read_packets(pcapng))
        n_ng = read_packets(pcapng).report.records_kept
        dpkt_pps = dpkt_rate(pcap, min(DPKT_SUBSET, n_packets))
        del table
        tracemalloc.start()
        base, _ = tracemalloc.get_traced_memory()
        trace = read_packets(pcap)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        table_mb = trace.table.memory_usage(deep=True).sum() / 2**20
        size_mb = pcap.stat().st_size / 2**20
    read_pps, ng_pps, write_pps = n_packets / t_read, n_ng / t_ng, n_packets / t_write
    print(f"packets: {n_packets:,} (caida-10k tiled), pcap file {size_mb:.1f} MiB, numba walk: {_walk.HAVE_NUMBA}")
    print(f"read pcap    : {read_pps / 1e6:6.2f} M pkt/s  ({t_read:.3f} s)")
    print(f"read pcapng  : {ng_pps / 1e6:6.2f} M pkt/s  ({t_ng:.3f} s, {n_ng:,} packets)")
    print(f"write pcap   : {write_pps / 1e6:6.2f} M pkt/s  ({t_write:.3f} s)")
    print(f"dpkt parse   : {dpkt_pps / 1e6:6.3f} M pkt/s  (first {min(DPKT_SUBSET, n_packets):,} packets, "
          "extrapolated)")
    print(f"ratio read/dpkt: {read_pps / dpkt_pps:.1f}x")
    print(f"peak traced memory during read: {(peak - base) / 2**20:.1f} MiB above baseline "
          f"(table itself {table_mb:.1f} MiB, file buffer {size_mb:.1f} MiB)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
