"""Hostile or careless requests (issue 14, items 5, 6 and 8 for the service): every job JSON gets a 2xx
or a 4xx naming the field, never a 500; gzip bombs are refused; a restarted server removes the upload
temporaries a killed one left."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tracesynth import limits

JOB_FIELDS = ("upload_id", "preset", "epochs", "chunks", "count", "scale", "dp_epsilon", "seed",
              "output_format", "overrides", "colour")
SECTIONS = ("time", "chunking", "flow_length", "word2vec", "model", "training", "privacy", "fields", "kind")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _post(client, body) -> int:
    r = client.post("/api/jobs", content=json.dumps(body, allow_nan=True),
                    headers={"Content-Type": "application/json"})
    return r.status_code, r


@pytest.fixture
def upload_id(idle_client, sample):
    r = idle_client.post("/api/uploads", content=sample.read_bytes())
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("change, text", [
    ({"scale": float("nan")}, "scale"),
    ({"scale": float("inf")}, "scale"),
    ({"dp_epsilon": float("-inf")}, "dp_epsilon"),
    ({"overrides": {"training": 5}}, "overrides.training: must be a mapping"),
    ({"overrides": {"model": None}}, "overrides.model: must be a mapping"),
    ({"overrides": {"privacy": 7}, "dp_epsilon": 2}, "overrides.privacy: must be a mapping"),
    ({"overrides": {"training": {"lr_generator": float("inf")}}}, "overrides.training.lr_generator: must be a finite"),
    ({"overrides": {"kind": "flows"}}, "overrides.kind"),
    ({"overrides": {"training": {"checkpoint_every": None}}}, "training.checkpoint_every"),  # found by hypothesis
    ({"overrides": {"model": {"attribute_num_units": 1_000_000_000}}}, "more than the limit"),
    ({"overrides": {"x": [[[[[[[[[[1]]]]]]]]]]}}, "nest at most"),
])
def test_bad_job_json_is_422_naming_the_field(idle_client, upload_id, change, text):
    """These answered 500 (NaN/Infinity, a section that is not a mapping) or were accepted (1e9 units)."""
    status, r = _post(idle_client, {"upload_id": upload_id, **change})
    assert status == 422, r.text
    assert text in r.text


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(JOB_FIELDS), value=json_values)
def test_any_json_value_in_any_field_is_2xx_or_4xx(idle_client, upload_id, field, value):
    status, r = _post(idle_client, {"upload_id": upload_id, field: value})
    assert status < 500, (field, value, r.text)
    if status == 201:
        assert idle_client.get(f"/api/jobs/{r.json()['id']}").status_code == 200
        assert idle_client.get("/api/jobs").status_code == 200


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.dictionaries(st.sampled_from(SECTIONS), json_values, max_size=3))
def test_any_override_section_value_is_2xx_or_4xx(idle_client, upload_id, overrides):
    status, r = _post(idle_client, {"upload_id": upload_id, "overrides": overrides})
    assert status < 500, (overrides, r.text)


def _known_keys() -> list[tuple[str, str]]:
    from tracesynth.config import preset

    data = preset("pcap").model_dump(mode="json")
    return [(section, key) for section, value in data.items() if isinstance(value, dict) for key in value]


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.tuples(st.sampled_from(_known_keys()), json_values), min_size=1, max_size=3))
def test_any_value_for_a_real_config_key_is_2xx_or_4xx(idle_client, upload_id, items):
    """Every real key of every section (model.sample_len, time.window, ...) with any JSON value."""
    overrides: dict = {}
    for (section, key), value in items:
        overrides.setdefault(section, {})[key] = value
    status, r = _post(idle_client, {"upload_id": upload_id, "overrides": overrides})
    assert status < 500, (overrides, r.text)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_any_json_document_as_the_body_is_2xx_or_4xx(idle_client, body):
    status, r = _post(idle_client, body)
    assert 400 <= status < 500, r.text


def test_gzip_bomb_upload_is_422_and_leaves_nothing(idle_client, settings, monkeypatch):
    """1 MB of pcap header and zeros, about 1 kB compressed: far past MAX_GZIP_RATIO x its size."""
    import gzip
    import struct

    monkeypatch.setattr(limits, "MIN_GZIP_LIMIT", 64 << 10)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    bomb = gzip.compress(header + bytes(1 << 20), 9)
    r = idle_client.post("/api/uploads", params={"filename": "bomb.pcap.gz"}, content=bomb)
    assert r.status_code == 422, r.text
    assert "decompression bomb" in r.json()["detail"] and r.json()["detail"].startswith("bomb.pcap.gz: ")
    assert os.listdir(settings.uploads_dir) == []


def test_start_up_removes_what_a_killed_server_left(settings):
    """Upload temporaries of a dead server (owner-tagged, or old-style and old) go; a live one stays."""
    from tracesynth._atomic import STALE_AGE_S, owner_tag
    from tracesynth.service.app import create_app

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = owner_tag().split("@")[1]
    uploads, run = settings.uploads_dir, settings.jobs_dir / "0f0c0b0e-0000-4000-8000-000000000000" / "run"
    for folder in (uploads, run):
        folder.mkdir(parents=True, exist_ok=True)
    gone = [uploads / f".incoming.{dead.pid}@{host}.k3j2.part", run / f".manifest.json.{dead.pid}@{host}.a1.part",
            uploads / ".incoming-0123456789abcdef.part"]
    live = uploads / f".incoming.{os.getppid()}@{host}.zz9.part"
    for p in (*gone, live):
        p.write_bytes(b"partial upload")
    past = time.time() - STALE_AGE_S - 60
    os.utime(gone[2], (past, past))
    create_app(settings)
    assert [p.exists() for p in gone] == [False, False, False]
    assert live.exists()
