"""DP-SGD cost and calibration figures, and the end-to-end epsilon sweep (2-core CPU: ~10 minutes).

1. Calibrated noise multiplier per target epsilon for a CAIDA-10k-sized schedule (3,149 flows, batch 100,
   5 critic steps, 2 critics per Poisson sample, 10 chunks: chunk 0 for E epochs, 9 fine-tunes for E/4),
   with the RDP accountant, and what NetShare's accounting (each batch counted twice, no composition
   over chunks) would have claimed for the same sigma.
2. The critic update's cost (`--cost` alone): wall ms per step, user and system CPU per step, minor page
   faults and peak RSS, for the ordinary batch update, DP-SGD through torch.func per-example gradients
   (before) and DP-SGD through Gram-factor clipping (after, `model.privacy.mlp_clipped_sum`), each in a
   fresh single-thread process, on the DoppelGANger critic at NetShare's PCAP sizes.

3. The epsilon sweep (`--sweep`, the default runs all three): epsilon in (1, 2, 4, 8, 16, inf) for naive
   DP (config ranges + a word2vec model trained on the public half) and for public pretraining (encoders
   and a model from the public half, DP-SGD fine-tuning on the private half), on caida-10k and ugr16-1k,
   each split in time: the earlier half public, the later half private. The inf point is a normal fit
   (`with_privacy(config, inf)`). Per point: mean NetShare JSD (SA, DA, SP, DP, PR) and the record
   classifier AUC (evaluate.structure) of a synthetic trace the size of the private half against it.
   Tiny models and few epochs so that all 24 fits fit in ~10 minutes on 2 shared cores: the figures show
   the trade-off's shape, not tracesynth's best quality. Writes docs/img/dp_sweep.png and
   docs/img/dp_sweep.json.

Run: nice -n 5 .venv/bin/python bench/bench_dp.py [--sweep | --no-sweep | --cost [--repeats N]]
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

from tracesynth.config import PrivacyConfig
from tracesynth.model.losses import WassersteinGP
from tracesynth.model.networks import Critic
from tracesynth.model.privacy import DPCriticUpdate, plan_privacy, spent_epsilon
from tracesynth.model.trainer import critic_step

logging.basicConfig(level=logging.WARNING)


def calibration_table() -> None:
    n_flows, batch, critic_steps, epochs, chunks = 3149, 100, 5, 8, 10
    per_chunk = [n_flows // chunks] * chunks
    schedule = [epochs] + [max(1, epochs // 4)] * (chunks - 1)
    print(f"schedule: {chunks} chunks of ~{per_chunk[0]} flows, batch {batch}, critic_steps {critic_steps}, "
          f"epochs {schedule[0]} + {chunks - 1} x {schedule[1]}")
    print(f"{'epsilon':>8} {'acct':>4} {'sigma':>8} {'count_sigma':>11} {'achieved':>9} {'NetShare-style claim':>21}")
    for eps in (1, 2, 4, 8, 16):
        for acct in ("rdp",):  # opacus' PRV accountant is far slower on the q = 1 count release
            t0 = time.perf_counter()
            ledger = plan_privacy(PrivacyConfig(epsilon=eps, accountant=acct), per_chunk, batch, schedule,
                                  critic_steps, np.random.default_rng(0))
            # NetShare: 2 releases per batch instead of 10, and only chunk 0 counted
            naive = spent_epsilon(sigma=ledger.sigma, sample_rate=ledger.sample_rate[0],
                                  steps=2 * ledger.steps[0] // (2 * critic_steps), delta=ledger.delta,
                                  accountant="rdp")
            print(f"{eps:>8} {acct:>4} {ledger.sigma:>8.3f} {ledger.count_sigma:>11.2f} {ledger.epsilon:>9.3f} "
                  f"{naive:>21.3f}   ({time.perf_counter() - t0:.1f} s)")


#: critic-update variants timed by `update_cost`, each in its own process (peak RSS is per process)
COST_MODES = {"plain": "plain WGAN-GP step (no DP)",
              "dp-vmap": "DP-SGD, torch.func per-example gradients (before)",
              "dp-gram": "DP-SGD, Gram-factor clipping (after)"}


def _cost_child(mode: str, repeats: int) -> dict:
    """Time `repeats` updates of the critic at NetShare's PCAP sizes in this process: wall per step, user
    and system CPU per step (getrusage), minor page faults per step and the process's peak RSS."""
    import resource

    torch.manual_seed(0)
    torch.set_num_threads(1)
    max_len, record_dim, attr_dim, batch = 100, 12, 158, 100
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(batch, max_len, record_dim, generator=g), torch.rand(batch, attr_dim, generator=g))
    fake = (torch.rand(batch, max_len, record_dim, generator=g), torch.rand(batch, attr_dim, generator=g))
    critic = Critic(attr_dim, record_dim, max_len, 4, 512)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
    loss_fn = WassersteinGP(10.0, torch.Generator().manual_seed(1))
    dp = DPCriticUpdate(1.0, 1.0, batch, 10.0, fast=mode == "dp-gram")
    step = (lambda: critic_step(critic, opt, real, fake, loss_fn)) if mode == "plain" else \
        (lambda: dp(critic, opt, real, fake, loss_fn))
    step()  # warm-up
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(repeats):
        step()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"mode": mode, "step_ms": wall / repeats * 1e3, "user_s": (r1.ru_utime - r0.ru_utime) / repeats,
            "sys_s": (r1.ru_stime - r0.ru_stime) / repeats, "faults": (r1.ru_minflt - r0.ru_minflt) / repeats,
            "peak_rss_mb": r1.ru_maxrss / 1024, "params": sum(p.numel() for p in critic.parameters())}


def update_cost(repeats: int = 3) -> list[dict]:
    """Before/after of the DP-SGD critic update in one run: each variant in a fresh process (one
    thread), so CPU times and peak memory are its own."""
    import subprocess
    import sys

    rows = []
    for mode in COST_MODES:
        done = subprocess.run([sys.executable, __file__, "--cost-child", mode, "--repeats", str(repeats)],
                              check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"critic update, batch 100, critic 4x512 on L=100 x 12 + 158 ({rows[0]['params'] / 1e6:.2f} M params), "
          f"1 thread, {repeats} steps per variant:")
    print(f"  {'variant':<52} {'step ms':>8} {'user s':>7} {'sys s':>7} {'faults':>8} {'peak RSS MB':>11}")
    for r in rows:
        print(f"  {COST_MODES[r['mode']]:<52} {r['step_ms']:>8.1f} {r['user_s']:>7.3f} {r['sys_s']:>7.3f} "
              f"{r['faults']:>8.0f} {r['peak_rss_mb']:>11.0f}")
    by = {r["mode"]: r for r in rows}
    print(f"  DP step after / before: {by['dp-gram']['step_ms'] / by['dp-vmap']['step_ms']:.3f}; "
          f"after / plain: {by['dp-gram']['step_ms'] / by['plain']['step_ms']:.1f}x")
    return rows


# ---- 3. the epsilon sweep -------------------------------------------------------------------------------

EPSILONS = (1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/work/shared/data")
#: TCP flag combinations common on the wire: data-independent choices (others map to the nearest)
TCP_FLAGS = [0, 1, 2, 4, 16, 17, 18, 20, 24, 25, 82, 194]
TINY_MODEL = dict(sample_len=5, attribute_num_units=32, attribute_num_layers=2, feature_num_units=32,
                  critic_num_units=32, critic_num_layers=2, attr_critic_num_units=32, attr_critic_num_layers=2)


def _split(path: Path):
    """Earlier half (by time) public, later half private; the private half's window is public knowledge
    (the collection period), taken here from its first and last timestamps."""
    from tracesynth import read_trace

    table = read_trace(path).table
    col = "time" if "time" in table else "ts"
    table = table.sort_values(col, kind="stable").reset_index(drop=True)
    mid = len(table) // 2
    public, private = table.iloc[:mid].reset_index(drop=True), table.iloc[mid:].reset_index(drop=True)
    return public, private, (float(private[col].min()), float(private[col].max()))


def _base_config(kind: str, window, w2v: str | None, naive: bool):
    """A tiny, DP-ready config: fixed ranges/choices/inter-arrival range when naive (no public trace)."""
    from tracesynth.config import config_from_dict, preset

    d = preset("pcap" if kind == "packets" else "netflow").model_dump(mode="json")
    d["model"].update(TINY_MODEL)
    d["flow_length"]["max_flow_len"] = 10
    d["chunking"]["n_chunks"] = 2
    d["training"].update(epochs=10 if kind == "packets" else 24, batch_size=50, critic_steps=1,
                         finetune_fraction=0.5, checkpoint_every=100, checkpoint_selection=False,
                         lr_generator=1e-3, lr_critic=1e-3)
    d["time"]["window"] = list(window)
    if naive:
        fixed = {"pkt_len": [0.0, 1500.0], "td": [0.0, 3600.0], "pkt": [0.0, 1e7], "byt": [0.0, 1e10]}
        choices = {"flag": list(range(8)), "tcp_flags": TCP_FLAGS, "label": ["background", "blacklist", "anomaly"]}
        for f in d["fields"]:
            f["range"] = fixed.get(f["name"], f["range"])
            f["choices"] = choices.get(f["name"], f["choices"])
        # inter-arrival within a flow: sub-millisecond on a backbone link, up to an active timeout (60 s)
        # between NetFlow records of one flow
        d["time"]["interarrival_range"] = [0.0, 1e-4] if kind == "packets" else [0.0, 60.0]
        d["word2vec"]["pretrained"] = w2v
    return config_from_dict(d, "sweep config")


def _public_w2v(public, folder: Path) -> str:
    from tracesynth.encoders.word2vec import PortProtoEmbedding

    emb = PortProtoEmbedding(10, 5, 1, 5, 0, 0).fit(public["srcport"].to_numpy(), public["dstport"].to_numpy(),
                                                    public["proto"].to_numpy())
    return str(emb.save(folder / "public-w2v.kv"))


def _score(real, synth, kind: str) -> dict:
    from tracesynth.evaluate.fidelity import netshare_jsd
    from tracesynth.evaluate.structure import classifier_auc, record_features

    jsd = netshare_jsd(real, synth)
    auc = classifier_auc(record_features(real, kind), record_features(synth, kind), seed=0)
    return {"jsd": {k: float(v) for k, v in jsd.items()}, "mean_jsd": float(np.nanmean(list(jsd.values()))),
            "auc": float(auc)}


def sweep_point(private, public, kind: str, window, w2v: str | None, mode: str, epsilon: float,
                folder: Path) -> dict:
    from tracesynth.pipeline.commands import with_privacy
    from tracesynth.pipeline.synthesizer import Synthesizer

    naive = mode == "naive"
    cfg = with_privacy(_base_config(kind, window, w2v, naive), epsilon)
    t0 = time.perf_counter()
    synth = Synthesizer(cfg).fit(private, run_dir=folder, public=None if naive else public,
                                 public_name=None if naive else "public half")
    fit_s = time.perf_counter() - t0
    table = synth.sample(count=len(private), seed=0)
    ledger = (synth.manifest["privacy"] or {}).get("ledger") or {}
    out = {"mode": mode, "epsilon": epsilon, "achieved_epsilon": ledger.get("epsilon", math.inf),
           "sigma": ledger.get("sigma", 0.0), "fit_s": round(fit_s, 1), "records": int(len(table))}
    out.update(_score(private, table, kind) if len(table) else {"mean_jsd": float("nan"), "auc": float("nan")})
    return out


def sweep(datasets=(("caida-10k", DATA / "caida/caida-10k.pcapng"), ("ugr16-1k", DATA / "ugr16/ugr16-1k.csv"))) -> list:
    results = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dp-sweep-") as tmp:
        tmp = Path(tmp)
        for name, path in datasets:
            public, private, window = _split(path)
            kind = "packets" if "time" in private else "flows"
            w2v = _public_w2v(public, tmp)
            print(f"\n{name}: public {len(public)} records, private {len(private)} records")
            print(f"{'mode':>7} {'epsilon':>7} {'achieved':>8} {'sigma':>7} {'mean JSD':>8} {'AUC':>6} {'fit s':>6}")
            for mode in ("naive", "public"):
                for eps in EPSILONS:
                    r = sweep_point(private, public, kind, window, w2v, mode, eps, tmp / f"{name}-{mode}-{eps}")
                    r["dataset"] = name
                    results.append(r)
                    print(f"{mode:>7} {eps:>7g} {r['achieved_epsilon']:>8.3g} {r['sigma']:>7.3g} "
                          f"{r['mean_jsd']:>8.3f} {r['auc']:>6.3f} {r['fit_s']:>6.1f}", flush=True)
    print(f"sweep: {len(results)} fits in {time.perf_counter() - t_all:.0f} s")
    _write(results)
    return results


def _plain(value):
    """JSON has no inf/nan: "inf" for epsilon = inf, null for a missing score."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _write(results: list) -> None:
    from tracesynth._atomic import atomic_open

    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    with atomic_open(img / "dp_sweep.json", "w") as fh:
        json.dump([{k: _plain(v) for k, v in r.items()} for r in results], fh, indent=1)
    _plot(results, img / "dp_sweep.png")


def _plot(results: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tracesynth._atomic import atomic_open

    x_of = {e: (32.0 if math.isinf(e) else e) for e in EPSILONS}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for metric, ax, label in (("mean_jsd", axes[0], "mean JSD (SA, DA, SP, DP, PR), lower is better"),
                              ("auc", axes[1], "record classifier AUC, 0.5 is best")):
        for dataset in dict.fromkeys(r["dataset"] for r in results):
            for mode, style in (("naive", "o--"), ("public", "s-")):
                pts = [r for r in results if r["dataset"] == dataset and r["mode"] == mode]
                ax.plot([x_of[r["epsilon"]] for r in pts], [r[metric] for r in pts], style,
                        label=f"{dataset}, {'public pretraining' if mode == 'public' else 'naive DP'}")
        ax.set_xscale("log", base=2)
        ax.set_xticks([x_of[e] for e in EPSILONS], [("inf" if math.isinf(e) else f"{e:g}") for e in EPSILONS])
        ax.set_xlabel("epsilon (delta 1e-5)")
        ax.set_title(label, fontsize=10)
    axes[1].set_ylim(0.45, 1.02)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    print(f"wrote {path} and its figures' JSON beside it")


def replot() -> None:
    """Redraw docs/img/dp_sweep.png from docs/img/dp_sweep.json (no fitting)."""
    img = ROOT / "docs" / "img"
    rows = json.loads((img / "dp_sweep.json").read_text())
    for r in rows:
        r["epsilon"] = math.inf if r["epsilon"] == "inf" else float(r["epsilon"])
        r.update({k: float("nan") for k in ("mean_jsd", "auc") if r.get(k) is None})
    _plot(rows, img / "dp_sweep.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="only the epsilon sweep")
    parser.add_argument("--no-sweep", action="store_true", help="only calibration and update cost")
    parser.add_argument("--replot", action="store_true", help="redraw the sweep's plot from its JSON")
    parser.add_argument("--cost", action="store_true", help="only the critic-update cost (before/after)")
    parser.add_argument("--cost-child", choices=list(COST_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help="critic updates per variant (--cost)")
    args = parser.parse_args()
    if args.cost_child:
        print(json.dumps(_cost_child(args.cost_child, args.repeats)))
    elif args.cost:
        update_cost(args.repeats)
    elif args.replot:
        replot()
    elif not args.sweep:
        calibration_table()
        update_cost()
    if not (args.no_sweep or args.replot or args.cost or args.cost_child):
        sweep()
