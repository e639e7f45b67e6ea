"""Model benchmark: DoppelGANger training and generation speed on encoded caida-10k (CPU).

Prints seconds per epoch, generator steps/s, flows/s trained, generated flows/s and records/s, peak
memory, a profile of one training step (what dominates), and comparisons: batch 100 vs 500, sample_len
5 / 10 / 25, 1 vs 2 torch threads, NetShare's network sizes vs a smaller CPU-sized network.

    .venv/bin/python bench/bench_model.py [--steps 3] [--quick]

Figures are measured over a few generator steps (each with `critic_steps` updates of both critics)
on a slice of the data and extrapolated to a full epoch (n_flows // batch_size generator steps).
Falls back to random tensors of caida-10k's encoded shape when the trace or the encoder is missing.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tracesynth.config import ModelConfig, TrainingConfig, preset
from tracesynth.encoders.base import Span
from tracesynth.model.dgan import DoppelGANger
from tracesynth.model.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "caida" / "caida-10k.pcapng"
log = logging.getLogger("bench_model")

#: a smaller network for CPU budgets (compared against NetShare's sizes)
SMALL = dict(attribute_num_layers=2, attribute_num_units=256, critic_num_layers=3, critic_num_units=256,
             attr_critic_num_layers=2, attr_critic_num_units=256)


def encoded_caida() -> tuple[dict, list[Span], list[Span], str]:
    """caida-10k through the real reader, flow table and FlowEncoder (pcap preset); else synthetic."""
    cfg = preset("pcap")
    try:
        from tracesynth import read_trace
        from tracesynth.encoders.flow_encoder import FlowEncoder
        from tracesynth.flows.table import FlowTable

        trace = read_trace(TRACE)
        table = getattr(trace, "table", trace)
        flows = FlowTable.from_records(table, max_flow_len=cfg.flow_length.max_flow_len)
        encoder = FlowEncoder(cfg).fit(flows)
        times = table["time"].to_numpy()
        enc = encoder.transform(flows, (float(times.min()), float(times.max())))
        data = {"attributes": enc.attributes, "features": enc.features, "gen_flags": enc.gen_flags}
        return data, encoder.attribute_spans, encoder.feature_spans, "caida-10k (FlowEncoder, pcap preset)"
    except Exception as exc:  # benchmark still runs without the trace or the encoder
        log.warning("falling back to synthetic tensors: %s", exc)
        rng = np.random.default_rng(0)
        a_spans = [Span(2, "softmax")] * 64 + [Span(10, "tanh")] * 3 + [Span(1, "sigmoid")]
        f_spans = [Span(1, "sigmoid")] * 4 + [Span(3, "softmax"), Span(1, "sigmoid"), Span(1, "sigmoid"),
                                              Span(10, "softmax")]
        n, L = 3163, 100
        lengths = np.minimum(rng.geometric(0.4, n), L)
        flags = (np.arange(L)[None] < lengths[:, None]).astype(np.float32)
        data = {"attributes": rng.random((n, 159), dtype=np.float32),
                "features": rng.random((n, L, 19), dtype=np.float32) * flags[..., None], "gen_flags": flags}
        return data, a_spans, f_spans, "synthetic tensors of caida-10k's encoded shape"


def subset(data: dict, n: int) -> dict:
    return {k: v[:n] for k, v in data.items()}


def time_training(data, a_spans, f_spans, model_cfg: ModelConfig, batch_size: int, steps: int) -> dict:
    """Seconds per generator step after one warm-up step."""
    model = DoppelGANger(a_spans, f_spans, data["gen_flags"].shape[1], model_cfg, seed=0)
    trainer = Trainer(model, TrainingConfig(batch_size=batch_size))
    trainer.fit(subset(data, batch_size), epochs=1, seed=0)  # warm-up: allocator, lazy init
    tick = time.perf_counter()
    trainer.fit(subset(data, batch_size * steps), epochs=1, seed=1, resume=False)
    per_step = (time.perf_counter() - tick) / steps
    n = len(data["attributes"])
    return {"s_per_step": per_step, "steps_per_s": 1 / per_step, "flows_per_s": batch_size / per_step,
            "s_per_epoch": (n // batch_size) * per_step}


def profile_step(data, a_spans, f_spans, model_cfg: ModelConfig, batch_size: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    model = DoppelGANger(a_spans, f_spans, data["gen_flags"].shape[1], model_cfg, seed=0)
    trainer = Trainer(model, TrainingConfig(batch_size=batch_size))
    trainer.fit(subset(data, batch_size), epochs=1, seed=0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.fit(subset(data, batch_size), epochs=1, seed=1, resume=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40)


def time_generation(data, a_spans, f_spans, model_cfg: ModelConfig, n: int, full_length: bool,
                    fused: bool = False) -> dict:
    """Generated flows/s and records/s; `full_length` biases the flag head so every flow has L records.
    `fused`: the full-length fused LSTM pass (`sample` in eval mode, what `generate` did before the
    early-stopping LSTM) instead of `generate`."""
    model = DoppelGANger(a_spans, f_spans, data["gen_flags"].shape[1], model_cfg, seed=0)
    if full_length:
        with torch.no_grad():
            head = model.feature_generator.head
            head.bias.view(model_cfg.sample_len, -1)[:, -2] += 50.0  # "continues" always wins
    model.generate(256, torch.Generator().manual_seed(0))
    tick = time.perf_counter()
    if fused:
        model.eval()
        gen, parts = torch.Generator().manual_seed(1), []
        with torch.no_grad():
            for start in range(0, n, 2048):
                _, records, f = model.sample(min(n, start + 2048) - start, gen)
                parts.append((records[..., :model.feature_dim].numpy(), f.numpy()))
        flags = np.concatenate([p[1] for p in parts])
    else:
        _, _, flags = model.generate(n, torch.Generator().manual_seed(1), batch_size=2048)
    dt = time.perf_counter() - tick
    return {"flows_per_s": n / dt, "records_per_s": float(flags.sum()) / dt, "records": float(flags.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="generator steps timed per setting")
    parser.add_argument("--quick", action="store_true", help="only the base setting and the profile")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data, a_spans, f_spans, source = encoded_caida()
    n, L = data["gen_flags"].shape
    print(f"data: {source}: {n} flows, A={data['attributes'].shape[1]}, L={L}, D={data['features'].shape[2]}, "
          f"records={int(data['gen_flags'].sum())}")
    netshare = preset("pcap").model  # NetShare's sizes, sample_len 10
    print(f"torch {torch.__version__}, default threads {torch.get_num_threads()}")

    def row(label: str, r: dict) -> None:
        print(f"  {label:<34} {r['s_per_step']:7.3f} s/step  {r['steps_per_s']:6.2f} steps/s  "
              f"{r['flows_per_s']:7.0f} flows/s  {r['s_per_epoch']:7.1f} s/epoch")

    torch.set_num_threads(1)
    print("training (batch 100, sample_len 10 unless stated; 1 thread):")
    base = time_training(data, a_spans, f_spans, netshare, 100, args.steps)
    row("netshare sizes", base)
    if not args.quick:
        small = ModelConfig(**{**netshare.model_dump(), **SMALL})
        row("small CPU sizes (critic 3x256)", time_training(data, a_spans, f_spans, small, 100, args.steps))
        row("batch 500", time_training(data, a_spans, f_spans, netshare, 500, max(1, args.steps // 2)))
        for s in (5, 25):
            cfg = ModelConfig(**{**netshare.model_dump(), "sample_len": s})
            row(f"sample_len {s}", time_training(data, a_spans, f_spans, cfg, 100, args.steps))
        os.environ["TRACESYNTH_TORCH_THREADS"] = "2"   # the trainer uses 1 thread unless told otherwise
        row("2 threads", time_training(data, a_spans, f_spans, netshare, 100, args.steps))
        del os.environ["TRACESYNTH_TORCH_THREADS"]
    for full in (False, True):
        for fused in (True, False):
            gen = time_generation(data, a_spans, f_spans, netshare, 10_000, full, fused)
            label = "every flow L records" if full else "untrained flag head"
            how = "fused full-length LSTM (before)" if fused else "early-stopped LSTM"
            print(f"generation (netshare sizes, 10k flows, {label}, {how}): {gen['flows_per_s']:.0f} flows/s, "
                  f"{gen['records_per_s']:.0f} records/s ({gen['records'] / 10_000:.1f} records/flow)")
    print("profile of one epoch of 1 generator step (5 critic steps x 2 critics + 1 generator step):")
    print(profile_step(data, a_spans, f_spans, netshare, 100))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
