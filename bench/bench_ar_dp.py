"""DP-SGD for the ar model on a small real slice: achieved epsilon, sigma and fit CPU seconds per target
epsilon, and the per-step cost of DP-SGD against the plain step (docs/privacy.md, "The ar model").

Private: caida-1k (1,000 packets, 445 flow samples). Public: the 4,000 packets of caida-10k after it
(disjoint). Window: caida-10k's span. Model hidden 16 or 64 (`--hidden`), max_epochs 4 (DP epochs
round(4 x finetune_fraction 0.25) = 1), batch 64, delta 1e-5, RDP. The inf row is public pretraining
then a normal (non-DP) fine-tune with early stopping; "public only" the pretrained model before any
private training. "private NLL" is the mean per-flow NLL (nats) of
the private flow samples under the final model, an evaluation only (it reads the private trace).

Run: OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/bench_ar_dp.py [--hidden 16]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tracesynth import read_trace
from tracesynth.config import config_from_dict, preset
from tracesynth.flows.table import FlowTable
from tracesynth.model.ar_private import DPFlowStep
from tracesynth.model.ar_trainer import mean_nll, pad_batch
from tracesynth.pipeline import ar
from tracesynth.pipeline.commands import with_privacy
from tracesynth.pipeline.synthesizer import Synthesizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "caida"


def slices():
    private = read_trace(DATA / "caida-1k.pcapng").table
    full = read_trace(DATA / "caida-10k.pcapng").table.sort_values("time", kind="stable")
    public = full[full["time"] > private["time"].max()].iloc[:4000].reset_index(drop=True)
    return private, public, (float(full["time"].min()), float(full["time"].max()))


def config(hidden: int, window, epsilon: float):
    d = preset("pcap").model_dump(mode="json")
    d["model"]["kind"] = "ar"
    d["model"]["ar"].update(hidden=hidden, max_epochs=4, batch_size=64)
    d["time"]["window"] = list(window)
    return with_privacy(config_from_dict(d), epsilon)


def private_nll(run: Path, cfg, private) -> float:
    gen = ar.ARGenerator.load(cfg, run / ar.FOLDER, json.loads((run / "manifest.json").read_text())["ar"])
    tokens = gen.tokenizer.transform(FlowTable.from_records(private, cfg.flow_length.max_flow_len))
    return float(sum(mean_nll(gen.model, tokens)))


def public_only_nll(hidden: int, private, public, window) -> float:
    """The pretrained model before any private training: what the DP fine-tune starts from."""
    cfg = config(hidden, window, math.inf)
    pub = ar.public_flows_in(public, cfg, window)
    tok = ar.make_tokenizer(cfg).fit(pub)
    model = ar.build(cfg, tok, int(cfg.training.seed))
    with tempfile.TemporaryDirectory() as tmp:
        ar._pretrain(model, tok.transform(pub), cfg, Path(tmp), None)
    tokens = tok.transform(FlowTable.from_records(private, cfg.flow_length.max_flow_len))
    return float(sum(mean_nll(model, tokens)))


def step_cost(hidden: int, private, public, window, repeats: int = 5) -> dict:
    """CPU ms per step, plain AdamW step vs DP-SGD step, on 64 private flow samples."""
    cfg = config(hidden, window, math.inf)
    tok = ar.make_tokenizer(cfg).fit(ar.public_flows_in(public, cfg, window))
    data = tok.transform(FlowTable.from_records(private, cfg.flow_length.max_flow_len))
    model = ar.build(cfg, tok, 0)
    batch = pad_batch(data, np.random.default_rng(0).choice(len(data), 64, replace=False))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dp = DPFlowStep(1.0, 1.0, 64.0)

    def plain():
        opt.zero_grad()
        model(*batch).mean().backward()
        opt.step()

    out = {}
    for name, fn in (("plain", plain), ("dp", lambda: dp(model, batch, opt))):
        fn()
        t = time.process_time()
        for _ in range(repeats):
            fn()
        out[name] = 1000 * (time.process_time() - t) / repeats
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    private, public, window = slices()
    rows = []
    for eps in (1.0, 4.0, 16.0, math.inf):
        cfg = config(args.hidden, window, eps)
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            t = time.process_time()
            synth = Synthesizer(cfg).fit(private, run_dir=run, public=public, public_name="caida-10k later part")
            cpu = time.process_time() - t
            synth.save(run)
            ledger = synth.manifest["privacy"]["ledger"] or {}
            rows.append({"target": eps, "epsilon": ledger.get("epsilon", math.inf), "sigma": ledger.get("sigma", 0.0),
                         "q": ledger.get("sample_rate", [None])[0], "steps": ledger.get("steps", [None])[0],
                         "fit_cpu_s": round(cpu, 1), "train_s": synth.manifest["timings"]["train_s"],
                         "private_nll": round(private_nll(run, cfg, private), 1)})
        print(json.dumps(rows[-1]))
    print(json.dumps({"public only": True, "private_nll": round(public_only_nll(args.hidden, private, public, window), 1)}))
    print(json.dumps({"hidden": args.hidden, "step_cpu_ms": step_cost(args.hidden, private, public, window)}))


if __name__ == "__main__":
    main()
