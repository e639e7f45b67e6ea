"""`tracesynth fit`, `generate` and `demo`: parse arguments, call one `tracesynth.api` function, print."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import SALVAGE, app, generation_options, out, progress_bar


@app.command()
def fit(trace: Path = typer.Argument(..., help="Real trace: pcap/pcapng or flow records (CSV/Parquet)."),
        out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder to create (or resume)."),
        preset: Optional[str] = typer.Option(None, help="pcap or netflow (default: matches the trace)."),
        config: Optional[Path] = typer.Option(None, help="YAML/JSON config file instead of a preset."),
        model: Optional[str] = typer.Option(None, "--model", help="ar (autoregressive, likelihood-trained) or "
                                            "doppelganger (NetShare's GAN); default: the config's model.kind."),
        epochs: Optional[int] = typer.Option(None, min=1, help="Training epochs for chunk 0 (doppelganger); "
                                             "the most epochs (ar, which stops early on held-out loss)."),
        chunks: Optional[int] = typer.Option(None, min=1, help="Number of time chunks."),
        workers: Optional[int] = typer.Option(None, min=1, help="Worker processes for the fine-tuned chunks "
                                              "(default: one per available core, at most one per chunk)."),
        ray: Optional[str] = typer.Option(None, help="Ray cluster address, or 'local' for an in-process Ray."),
        seed: Optional[int] = typer.Option(None, help="Training seed."),
        device: Optional[str] = typer.Option(None, help="cpu or cuda."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing, different run folder."),
        dp_epsilon: Optional[float] = typer.Option(None, "--dp-epsilon", help="Train with differential "
                                                   "privacy at this epsilon (inf: no DP); see docs/privacy.md."),
        dp_delta: Optional[float] = typer.Option(None, "--dp-delta", help="DP delta (default 1e-5)."),
        public: Optional[Path] = typer.Option(None, "--public", help="Public trace: fit encoders and pretrain "
                                              "on it (no DP), then fine-tune every chunk on TRACE."),
        salvage: bool = SALVAGE,
        window: Optional[str] = typer.Option(None, "--window", metavar="START,END",
                                             help="Time window of TRACE in epoch seconds (time.window); in DP "
                                                  "mode it is public knowledge, never read from TRACE."),
        ) -> None:
    """Fit a generative model of TRACE into a run folder (resumes an interrupted fit)."""
    from .. import api

    with progress_bar("fit") as bar:
        result = api.fit_path(trace, out_dir, preset=preset, config=config, epochs=epochs, chunks=chunks,
                              workers=workers, ray=ray, seed=seed, device=device, force=force,
                              dp_epsilon=dp_epsilon, dp_delta=dp_delta, public=public, salvage=salvage,
                              window=window, model=_model_kind(model),
                              progress=bar)
    resumed = " (resumed)" if result["resumed"] else ""
    out.print(f"sizing: {result['sizing']}")
    what = "packets" if result["kind"] == "packets" else "flow records"
    shape = ("one autoregressive model" if result["model"] == "ar"
             else f"{result['chunks']} chunk(s), {result['epochs']} epochs")
    out.print(f"fitted {result['records']:,} {what} ({shape}) in {result['fit_s']:.1f} s{resumed} -> {result['run']}")
    if result.get("public"):
        out.print(f"pretrained on public trace {result['public']}")
    if result.get("dp"):
        dp = result["dp"]
        out.print(f"differential privacy: epsilon = {dp['epsilon']:.4g}, delta = {dp['delta']:g} "
                  f"(sigma {dp['sigma']:.4g}; details in {result['run']}/manifest.json)")


def _model_kind(name: Optional[str]) -> Optional[str]:
    from ..config import MODEL_KINDS
    from ..errors import UserError

    if name is not None and name not in MODEL_KINDS:
        raise UserError(f"--model: unknown model {name!r}; choose {' or '.join(sorted(MODEL_KINDS))}")
    return name


@app.command()
def generate(run: Path = typer.Argument(..., help="Run folder written by `tracesynth fit`."),
             out_file: Path = typer.Option(..., "--out", "-o", help="Output .pcap, .csv or .parquet."),
             seed: int = typer.Option(0, help="Sampling seed (same seed, same output)."),
             scale: Optional[float] = typer.Option(None, help="Output size relative to the training trace."),
             count: Optional[int] = typer.Option(None, min=0, help="Number of packets / flow records."),
             threads: Optional[int] = typer.Option(
                 None, min=1, help="CPU threads (default: TRACESYNTH_GENERATE_THREADS, else every core). "
                                   "Use 1 on a machine busy with other work."),
             precision: Optional[str] = typer.Option(
                 None, metavar="auto|float32|bfloat16",
                 help="Precision of generation's large matmuls (default: TRACESYNTH_GENERATE_DTYPE, else "
                      "auto = bfloat16 where the CPU has native bfloat16 matmuls)."),
             temperature: Optional[float] = typer.Option(
                 None, help="ar model: sampling temperature (1 = the learnt distribution; below 1 sharper and "
                            "closer to the training data's frequent values, above 1 flatter; docs/models.md)."),
             ) -> None:
    """Sample a synthetic trace from a fitted run."""
    from .. import api

    options = generation_options(threads, precision)
    with progress_bar("generate") as bar:
        result = api.generate_path(run, out_file, count=count, scale=scale, seed=seed, options=options,
                                   temperature=temperature, progress=bar)
    what = "packets" if result["kind"] == "packets" else "flow records"
    out.print(f"wrote {result['records']} synthetic {what} -> {result['out']}")


@app.command()
def demo(out_dir: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for the demo's outputs."),
         ) -> None:
    """Fit the bundled sample, generate a synthetic PCAP and its NetFlow records (a few minutes)."""
    from .. import api

    options = generation_options(None, None)
    with progress_bar("demo") as bar:
        result = api.demo(out_dir, options=options, progress=bar)
    out.print(f"sample:           {result['sample']}")
    out.print(f"run folder:       {result['run']}  (fit in {result['fit_s']:.0f} s)")
    out.print(f"synthetic pcap:   {result['pcap']}  ({result['packets']} packets)")
    out.print(f"synthetic flows:  {result['flows']}")
    if "report" in result:
        out.print(f"report:           {result['report']}")
