"""Path-in / path-out entry points for `fit`, `generate` and `demo` (re-exported by `tracesynth.api`).

Each returns a small JSON-friendly dict describing what it wrote, so the CLI and the web service can
show it without knowing the pipeline.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from ..config import TraceSynthConfig, config_from_dict, fields_for_columns, load_config, preset as preset_config
from ..errors import UserError
from ..progress import ProgressCallback
from ..runtime import GenerationOptions
from . import private
from .runners import RayRunner, make_runner
from .synthesizer import Synthesizer

log = logging.getLogger(__name__)

#: Demo budget: the preset's model (ar) stops early on held-out flows, within at most DEMO_EPOCHS (about
#: 15 s on 2 cores). For `--model doppelganger` runs of the demo sample: the chunk count is chosen from
#: the sample (1: its first half holds 2 of its 139 flows) and batches of 32 give its 20 epochs 4 steps each
#: (the automatic batch, 100, would give one).
DEMO_EPOCHS = 20
DEMO_BATCH = 32


def build_config(kind: str, *, preset: str | None = None, config: str | Path | None = None,
                 epochs: int | None = None, chunks: int | None = None, seed: int | None = None,
                 device: str | None = None, batch_size: int | None = None, model: str | None = None) -> TraceSynthConfig:
    """The run's config: a file, a named preset, or the preset matching the trace; then CLI overrides."""
    if preset and config:
        raise UserError("give either --preset or --config, not both")
    cfg = load_config(config) if config else preset_config(preset or ("pcap" if kind == "packets" else "netflow"))
    data = cfg.model_dump(mode="json")
    if model is not None:
        data["model"]["kind"] = model
    if epochs is not None:  # the DoppelGANger schedule, and the autoregressive model's cap
        data["model"]["ar"]["max_epochs"] = epochs
        data["training"]["epochs"] = epochs
        data["training"]["checkpoint_every"] = min(data["training"]["checkpoint_every"], max(1, epochs))
    if chunks is not None:
        data["chunking"]["n_chunks"] = chunks
    if seed is not None:
        data["training"]["seed"] = seed
    if batch_size is not None:
        data["training"]["batch_size"] = batch_size
    if device is not None:
        data["training"]["device"] = device
    return config_from_dict(data, "command-line options")


def with_privacy(cfg: TraceSynthConfig, epsilon: float | None, delta: float | None = None,
                 public: str | Path | None = None) -> TraceSynthConfig:
    """`cfg` with DP at (epsilon, delta) (`--dp-epsilon`, `--dp-delta`); epsilon = inf means no DP.

    The epsilon sweep and the CLI both build configs here, so the sweep's no-DP point is exactly a
    normal fit: privacy None, everything else unchanged. `public` is recorded as privacy.public_trace.
    """
    if epsilon is None:
        if delta is not None:
            raise UserError("--dp-delta needs --dp-epsilon (the privacy budget)")
        return cfg
    if not epsilon > 0:
        raise UserError(f"--dp-epsilon must be > 0 (or inf for no DP), got {epsilon}")
    data = cfg.model_dump(mode="json")
    if math.isinf(epsilon):
        data["privacy"] = None
        return config_from_dict(data, "command-line options")
    privacy = dict(data.get("privacy") or {})
    privacy["epsilon"] = float(epsilon)
    if delta is not None:
        privacy["delta"] = float(delta)
    if public is not None:
        privacy["public_trace"] = str(public)
    data["privacy"] = privacy
    return config_from_dict(data, "command-line options")


def fit_path(trace: str | Path, out: str | Path, *, preset: str | None = None, config: str | Path | None = None,
             epochs: int | None = None, chunks: int | None = None, workers: int | None = None, ray: str | None = None,
             seed: int | None = None, device: str | None = None, force: bool = False,
             batch_size: int | None = None, dp_epsilon: float | None = None, dp_delta: float | None = None,
             public: str | Path | None = None, salvage: bool = False,
             window: str | tuple[float, float] | None = None, model: str | None = None,
             progress: ProgressCallback | None = None) -> dict:
    """Fit a model on TRACE into the run folder OUT (resuming an interrupted fit of the same run).

    `dp_epsilon`/`dp_delta`: train with differential privacy; `public`: a public trace to fit the
    encoders on and pretrain on before fine-tuning on TRACE (with or without DP). Chunks and batch size
    unset in the config are chosen from the trace (flows/sizing.py); `workers` None: one per core, at most
    one per fine-tuned chunk. `salvage`: keep the packets before damage in the middle of a capture. A
    trace without records is refused. `window`: time.window ("START,END" epoch seconds, `--window`). A
    preset in DP mode is made DP-ready (`private.dp_ready_preset`); a custom config must say everything
    itself.
    """
    from .._atomic import check_output_folder
    from ..io import read_trace, require_records

    check_output_folder(out, "run folder")
    trace = Path(trace)
    loaded = require_records(read_trace(trace, progress=progress, salvage=salvage), "fit")
    cfg = build_config(loaded.kind, preset=preset, config=config, epochs=epochs, chunks=chunks, seed=seed,
                       device=device, batch_size=batch_size, model=model)
    cfg = fields_for_columns(cfg, loaded.table.columns, trace=str(trace), config_file=config and str(config))
    cfg = with_privacy(cfg, dp_epsilon, dp_delta, public)
    cfg = private.with_window(cfg, window if isinstance(window, tuple) else private.parse_window(window))
    if public is None and cfg.privacy is not None and cfg.privacy.public_trace:
        public = cfg.privacy.public_trace
    public_table = None
    if cfg.privacy is not None:  # refuse before touching the run folder
        from ..model.privacy import check_dp_config

        if config is None:  # a preset: DP-ready here (its window may come from the public trace)
            if public is not None and cfg.time.window is None:
                public_table = read_trace(public, progress=progress).table
            cfg = private.dp_ready_preset(cfg, public_table, None if public is None else str(public),
                                          model_chosen=model is not None)
        check_dp_config(cfg, str(public) if public is not None else None)
    if public is not None and public_table is None:
        public_table = read_trace(public, progress=progress).table
    runner = make_runner(workers, ray)
    try:
        synth = Synthesizer(cfg).fit(loaded.table, progress, run_dir=out, runner=runner, force=force,
                                     input_name=str(trace), public=public_table,
                                     public_name=None if public is None else str(public))
    finally:
        if isinstance(runner, RayRunner):
            runner.shutdown()
    synth.save(out)
    m = synth.manifest
    ledger = (m.get("privacy") or {}).get("ledger")
    return {"run": str(Path(out)), "kind": cfg.kind, "model": cfg.model.kind,
            "sizing": synth.sizing.describe() if synth.sizing else "one autoregressive model over the whole trace",
            "records": m["input"]["records"], "chunks": len(m["chunks"]), "epochs": cfg.training.epochs, "fit_s": m["timings"]["fit_s"], "resumed": m["resumed"],
            "runner": m["runner"], "public": None if public is None else str(public),
            "dp": None if ledger is None else {"epsilon": ledger["epsilon"], "delta": ledger["delta"],
                                               "sigma": ledger["sigma"]}}


def report_meta(run: str | Path) -> dict:
    """Facts of a run for the HTML report (`report --meta`): the privacy guarantee and what produced it.

    Flat `label: value` pairs, since the report shows them as a table; empty for a run without DP or
    public pretraining.
    """
    from .rundir import RunDir

    manifest = RunDir(run).read_manifest()
    block, ar = manifest.get("privacy") or {}, manifest.get("model") == "ar"
    meta: dict = {}
    if block.get("public"):
        pub = block["public"]
        meta["public pretraining"] = f"{pub['name']} ({pub['flows']} flow samples, {pub['epochs']} epochs, no DP)"
    ledger = block.get("ledger")
    if not ledger:
        if block:
            meta["differential privacy"] = "off"
        return meta
    meta["differential privacy"] = (f"epsilon = {ledger['epsilon']:.4g} at delta = {ledger['delta']:g} "
                                    f"(target {ledger['target_epsilon']:g}; training {ledger['training_epsilon']:.4g})")
    meta["DP-SGD"] = (f"noise multiplier sigma = {ledger['sigma']:.4g}, clip C = {ledger['clip']:g}, "
                      + ("one noisy update of the autoregressive model" if ar else
                         f"{ledger['updates_per_sample']} noisy critic updates")
                      + f" per Poisson sample, {ledger['accountant'].upper()} accountant")
    schedule = [f"q = {q:.4g}, {s} samples, {e} epochs" for q, s, e in
                zip(ledger["sample_rate"], ledger["steps"], ledger.get("epochs") or [""] * len(ledger["steps"]))]
    if ar:
        meta["DP schedule"] = schedule[0]
    else:
        meta["DP schedule (per chunk)"] = "; ".join(f"chunk {i}: {s}" for i, s in enumerate(schedule))
    meta["DP flow counts"] = (f"Gaussian mechanism, sigma = {ledger['count_sigma']:.4g} "
                              f"(epsilon {ledger['count_epsilon']:.4g} alone); released {ledger['noisy_flow_counts']}")
    meta["unit of privacy"] = ledger["unit"]
    return meta


def check_sampling_options(count: int | None, scale: float | None, seed: int) -> None:
    """Refuse what no sampler can honour, before loading the model: a NaN/infinite/non-positive scale, a
    negative count or seed (numpy and torch seeds are unsigned)."""
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise UserError(f"--scale must be a finite number > 0 (for example 0.5 or 2), got {scale:g}")
    if count is not None and count < 0:
        raise UserError(f"--count must be >= 0, got {count}")
    if seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {seed}")


def generate_path(run: str | Path, out: str | Path, *, count: int | None = None, scale: float | None = None,
                  seed: int = 0, options: GenerationOptions | None = None, temperature: float | None = None,
                  progress: ProgressCallback | None = None) -> dict:
    """Sample a synthetic trace from the run folder RUN and write it to OUT (.pcap, .csv or .parquet).
    `temperature`: the ar model's sampling temperature (default: the run's `model.ar.temperature`).

    `options`: generation's threads and precision (default: every core, auto); the result records them
    (resolved), since the output for a seed depends on them."""
    from .._atomic import check_output_path
    from ..io import write_trace

    out = check_output_path(out)
    check_sampling_options(count, scale, seed)
    synth = Synthesizer.load(run)
    if out.suffix.lower() in (".pcap", ".cap") and synth.config.kind != "packets":
        raise UserError(f"{out}: this run models flow records, which cannot be written as a pcap; use .csv or "
                        ".parquet")
    options = options or GenerationOptions()
    t0 = time.perf_counter()
    if temperature is not None and not 0 <= temperature <= 10:
        raise UserError(f"--temperature must be between 0 and 10 (1 = the learnt distribution), got {temperature:g}")
    table = synth.sample(count=count, scale=scale, seed=seed, progress=progress, options=options,
                         temperature=temperature)
    gen_s = time.perf_counter() - t0
    write_trace(table, out)
    return {"out": str(out), "records": int(len(table)), "kind": synth.config.kind, "seed": seed,
            "generate_s": round(gen_s, 3), "generation": options.describe()}


def demo(out: str | Path = "demo-out", *, epochs: int = DEMO_EPOCHS, force: bool = True,
         options: GenerationOptions | None = None, progress: ProgressCallback | None = None) -> dict:
    """Fit the bundled sample, write a synthetic PCAP, its NetFlow records and an evaluation report."""
    from ..data import sample_path
    from ..io import read_trace, write_trace
    from ..io.flowmeter import meter_flows

    from .._atomic import check_output_folder

    out = check_output_folder(out, "demo folder")
    out.mkdir(parents=True, exist_ok=True)
    sample = Path(sample_path())
    run = out / "run"
    fitted = fit_path(sample, run, epochs=epochs, batch_size=DEMO_BATCH, force=force, progress=progress)
    pcap = out / "synthetic.pcap"
    generated = generate_path(run, pcap, seed=0, options=options, progress=progress)
    synth_packets = read_trace(pcap).table
    flows_csv = write_trace(meter_flows(synth_packets), out / "synthetic-flows.csv")
    result = {"sample": str(sample), "run": str(run), "pcap": str(pcap), "flows": str(flows_csv),
              "packets": generated["records"], "fit_s": fitted["fit_s"]}
    result["report"] = _report(sample, pcap, out / "report.html", run)
    return result


def _report(real: Path, synth: Path, out: Path, run: Path) -> str:
    """The demo's evaluation report, with the run's facts (and DP ledger, if any) in its Run section."""
    from ..evaluate import report_paths

    meta = report_meta(run)
    report_paths(real, synth, out, **({"meta": meta} if meta else {}))
    return str(out)
