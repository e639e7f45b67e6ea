"""Path-in / path-out entry points for `fit`, `generate` and `demo` (re-exported by `tracesynth.api`).

Each returns a small JSON-friendly dict describing what it wrote, so the CLI and the web service can
show it without knowing the pipeline.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from ..config import TraceSynthConfig, config_from_dict, load_config, preset as preset_config
from ..errors import UserError
from ..progress import ProgressCallback
from .runners import RayRunner, make_runner
from .synthesizer import Synthesizer

log = logging.getLogger(__name__)

#: Demo budget: small enough for < 5 minutes on 2 cores, large enough for recognisable output.
DEMO_EPOCHS = 20
DEMO_CHUNKS = 1      # the bundled sample has 139 flows over 4 s: one chunk keeps a full batch of flows
DEMO_BATCH = 32


def build_config(kind: str, *, preset: str | None = None, config: str | Path | None = None,
                 epochs: int | None = None, chunks: int | None = None, seed: int | None = None,
                 device: str | None = None, batch_size: int | None = None) -> TraceSynthConfig:
    """The run's config: a file, a named preset, or the preset matching the trace; then CLI overrides."""
    if preset and config:
        raise UserError("give either --preset or --config, not both")
    cfg = load_config(config) if config else preset_config(preset or ("pcap" if kind == "packets" else "netflow"))
    data = cfg.model_dump(mode="json")
    if epochs is not None:
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


def fit_path(trace: str | Path, out: str | Path, *, preset: str | None = None, config: str | Path | None = None,
             epochs: int | None = None, chunks: int | None = None, workers: int = 1, ray: str | None = None,
             seed: int | None = None, device: str | None = None, force: bool = False,
             batch_size: int | None = None, progress: ProgressCallback | None = None) -> dict:
    """Fit a model on TRACE into the run folder OUT (resuming an interrupted fit of the same run)."""
    from ..io import read_trace

    trace = Path(trace)
    loaded = read_trace(trace, progress=progress)
    cfg = build_config(loaded.kind, preset=preset, config=config, epochs=epochs, chunks=chunks, seed=seed,
                       device=device, batch_size=batch_size)
    runner = make_runner(workers, ray)
    try:
        synth = Synthesizer(cfg).fit(loaded.table, progress, run_dir=out, runner=runner, force=force,
                                     input_name=str(trace))
    finally:
        if isinstance(runner, RayRunner):
            runner.shutdown()
    synth.save(out)
    m = synth.manifest
    return {"run": str(Path(out)), "kind": cfg.kind, "records": m["input"]["records"], "chunks": len(m["chunks"]),
            "epochs": cfg.training.epochs, "fit_s": m["timings"]["fit_s"], "resumed": m["resumed"],
            "runner": m["runner"]}


def generate_path(run: str | Path, out: str | Path, *, count: int | None = None, scale: float | None = None,
                  seed: int = 0, progress: ProgressCallback | None = None) -> dict:
    """Sample a synthetic trace from the run folder RUN and write it to OUT (.pcap, .csv or .parquet)."""
    from ..io import write_trace

    out = Path(out)
    synth = Synthesizer.load(run)
    if out.suffix.lower() in (".pcap", ".cap") and synth.config.kind != "packets":
        raise UserError(f"{out}: this run models flow records, which cannot be written as a pcap; use .csv or "
                        ".parquet")
    t0 = time.perf_counter()
    table = synth.sample(count=count, scale=scale, seed=seed, progress=progress)
    gen_s = time.perf_counter() - t0
    write_trace(table, out)
    return {"out": str(out), "records": int(len(table)), "kind": synth.config.kind, "seed": seed,
            "generate_s": round(gen_s, 3)}


def demo(out: str | Path = "demo-out", *, epochs: int = DEMO_EPOCHS, force: bool = True,
         progress: ProgressCallback | None = None) -> dict:
    """Fit the bundled sample, write a synthetic PCAP, its NetFlow records and (if available) a report."""
    from ..data import sample_path
    from ..io import read_trace, write_trace
    from ..io.flowmeter import meter_flows

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sample = Path(sample_path())
    run = out / "run"
    fitted = fit_path(sample, run, epochs=epochs, chunks=DEMO_CHUNKS, force=force,
                      batch_size=DEMO_BATCH, progress=progress)
    pcap = out / "synthetic.pcap"
    generated = generate_path(run, pcap, seed=0, progress=progress)
    synth_packets = read_trace(pcap).table
    flows_csv = write_trace(meter_flows(synth_packets), out / "synthetic-flows.csv")
    result = {"sample": str(sample), "run": str(run), "pcap": str(pcap), "flows": str(flows_csv),
              "packets": generated["records"], "fit_s": fitted["fit_s"]}
    report = _report(sample, pcap, out / "report.html", run)
    if report:
        result["report"] = report
    return result


def _report(real: Path, synth: Path, out: Path, run: Path) -> str | None:
    """An evaluation report when the evaluation package offers one (it is optional for the demo)."""
    try:
        from .. import api
    except ImportError:
        return None
    report_paths = getattr(api, "report_paths", None)
    if report_paths is None:
        return None
    report_paths(real, synth, out)
    return str(out)
