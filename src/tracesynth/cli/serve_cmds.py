"""`tracesynth serve`: run the web service (FastAPI on uvicorn) for a team."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from ._app import app, err


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; keep 127.0.0.1 unless a proxy fronts it."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    data_dir: Path = typer.Option(Path("tracesynth-data"), "--data-dir",
                                  help="Folder for uploads, job outputs and the SQLite job database."),
    token: Optional[str] = typer.Option(None, envvar="TRACESYNTH_TOKEN", show_envvar=True,
                                        help="Bearer token every request must carry (pages: sign in once)."),
    max_jobs: int = typer.Option(1, "--max-jobs", min=1, help="Jobs trained at the same time."),
    max_upload_mb: int = typer.Option(200, "--max-upload-mb", min=1, help="Largest accepted upload, in MiB."),
) -> None:
    """Serve the web front end and JSON API (/docs); jobs train in worker processes."""
    try:
        import uvicorn

        from ..service.app import create_app
        from ..service.settings import ServiceSettings
    except ModuleNotFoundError as exc:
        raise UserError(f"the web service needs the 'service' extra ({exc.name} is missing); "
                        "install it with: pip install 'tracesynth[service]'") from None
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        err.print(f"[yellow]warning:[/yellow] binding {host} without --token: anyone who can reach this port "
                  "can upload traces and start jobs")
    settings = ServiceSettings(data_dir=data_dir, host=host, port=port, token=token or None,
                               max_jobs=max_jobs, max_upload_mb=max_upload_mb)
    os.environ.pop("TRACESYNTH_TOKEN", None)  # workers never need it
    err.print(f"tracesynth service on http://{host}:{port}/ (data in {settings.data_dir}, "
              f"{max_jobs} concurrent job(s){', token required' if token else ''})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
