"""Fixtures for the web service tests: a fresh data folder, an in-process app, a real server subprocess."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("fastapi", reason="the web service needs the 'service' extra (fastapi, uvicorn)")

from tracesynth.service.app import create_app  # noqa: E402
from tracesynth.service.settings import ServiceSettings  # noqa: E402

from service_helpers import ServerProcess  # noqa: E402


@pytest.fixture
def sample() -> Path:
    """The bundled real capture (nDPI ethereum.pcap, 2,000 packets)."""
    from tracesynth.data import sample_path

    path = Path(sample_path())
    if not path.exists():
        pytest.skip("the bundled sample capture is missing")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(data_dir=tmp_path / "data", max_upload_mb=2)


@pytest.fixture
def client(settings: ServiceSettings):
    """An app whose scheduler runs (lifespan entered): jobs really start in worker processes."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def idle_client(settings: ServiceSettings):
    """An app whose scheduler never starts: submitted jobs stay queued (to test queue operations)."""
    from fastapi.testclient import TestClient

    return TestClient(create_app(settings))


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def start(*extra: str, env: dict | None = None) -> ServerProcess:
        server = ServerProcess(tmp_path / "data", *extra, env=env)
        started.append(server)
        return server

    (tmp_path / "data").mkdir()
    yield start
    for server in started:
        server.stop()
