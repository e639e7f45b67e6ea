"""Service settings: one small dataclass shared by the app, the job manager and the CLI."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..runtime import GenerationOptions


@dataclass
class ServiceSettings:
    """`token`: when set, every request needs `Authorization: Bearer <token>` (or the login cookie).
    Users with tokens of their own live in `users_path` (docs/service.md, "Users").
    `generation`: generation's precision, and its threads when the operator fixes them (threads None:
    each job gets the cores shared among `max_jobs`, `jobs.worker_threads`)."""

    data_dir: Path = Path("tracesynth-data")
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_jobs: int = 1
    max_upload_mb: int = 200
    generation: GenerationOptions = field(default_factory=GenerationOptions)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if self.max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        if self.max_upload_mb < 1:
            raise ValueError("max_upload_mb must be at least 1")

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 2**20

    @property
    def db_path(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def users_path(self) -> Path:
        """The users file (`tracesynth serve users add`); absent: single-user mode."""
        return self.data_dir / "users.json"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"
