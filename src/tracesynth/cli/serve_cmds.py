"""`tracesynth serve`: run the web service (FastAPI on uvicorn) for a team; `serve users`: its users."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from ._app import app, err, generation_options, out

serve_app = typer.Typer(help="Serve the web front end and JSON API (/docs); jobs train in worker processes.",
                        invoke_without_command=True, no_args_is_help=False)
users_app = typer.Typer(help="Users of the service: each gets a token of their own (stored hashed).",
                        no_args_is_help=True)
serve_app.add_typer(users_app, name="users")
app.add_typer(serve_app, name="serve")

_DATA_DIR = typer.Option(Path("tracesynth-data"), "--data-dir",
                         help="Folder for uploads, job outputs, the SQLite job database and users.json.")


@serve_app.callback()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to bind; keep 127.0.0.1 unless a proxy fronts it."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    data_dir: Path = _DATA_DIR,
    token: Optional[str] = typer.Option(None, envvar="TRACESYNTH_TOKEN", show_envvar=True,
                                        help="Shared admin token every request must carry (pages: sign in "
                                             "once); per-user tokens: `tracesynth serve users add`."),
    max_jobs: int = typer.Option(1, "--max-jobs", min=1, help="Jobs trained at the same time."),
    max_upload_mb: int = typer.Option(200, "--max-upload-mb", min=1, help="Largest accepted upload, in MiB."),
) -> None:
    """Serve the web front end and JSON API (/docs); jobs train in worker processes."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        import uvicorn

        from ..service.app import create_app
        from ..service.settings import ServiceSettings
    except ModuleNotFoundError as exc:
        raise UserError(f"the web service needs the 'service' extra ({exc.name} is missing); "
                        "install it with: pip install 'tracesynth[service]'") from None
    settings = ServiceSettings(data_dir=data_dir, host=host, port=port, token=token or None,
                               max_jobs=max_jobs, max_upload_mb=max_upload_mb,
                               generation=generation_options(None, None))
    from ..service.users import list_users

    users = list_users(settings.users_path)
    if host not in ("127.0.0.1", "localhost", "::1") and not token and not users:
        err.print(f"[yellow]warning:[/yellow] binding {host} without --token or users: anyone who can reach "
                  "this port can upload traces and start jobs")
    os.environ.pop("TRACESYNTH_TOKEN", None)  # workers never need it
    access = f"{len(users)} user(s)" if users else ("token required" if token else "open, single user")
    err.print(f"tracesynth service on http://{host}:{port}/ (data in {settings.data_dir}, "
              f"{max_jobs} concurrent job(s), {access})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _users_path(data_dir: Path) -> Path:
    from ..service.settings import ServiceSettings

    return ServiceSettings(data_dir=data_dir).users_path


@users_app.command("add")
def users_add(name: str = typer.Argument(..., help="User name (letters, digits, '.', '_', '-')."),
              admin: bool = typer.Option(False, "--admin", help="May see and manage every user's uploads "
                                                                "and jobs."),
              data_dir: Path = _DATA_DIR) -> None:
    """Add a user and print their token (once: only its SHA-256 is stored)."""
    from ..service.users import add_user

    token = add_user(_users_path(data_dir), name, admin=admin)
    err.print(f"added {'admin ' if admin else ''}user {name!r}; their token (shown once, keep it secret):")
    out.print(token, highlight=False)


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="User name."), data_dir: Path = _DATA_DIR) -> None:
    """Remove a user: their token stops working at once (their uploads and jobs stay, for admins)."""
    from ..service.users import remove_user

    remove_user(_users_path(data_dir), name)
    err.print(f"removed user {name!r}")


@users_app.command("list")
def users_list(data_dir: Path = _DATA_DIR) -> None:
    """List the users (names and roles; tokens are not stored)."""
    from ..service.users import list_users

    users = list_users(_users_path(data_dir))
    if not users:
        err.print("no users: the service runs in single-user mode (open, or one shared --token)")
    for user in users:
        out.print(f"{user.name}\t{'admin' if user.admin else 'user'}", highlight=False)
