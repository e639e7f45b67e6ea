"""The JSON API with real uploads: content sniffing, size limits, safe storage, validation, auth, queue ops."""
from __future__ import annotations

import os
import uuid

import pytest

CAIDA_1K = "caida/caida-1k.pcapng"


def _upload(client, path, name=None):
    return client.post("/api/uploads", params={"filename": name or path.name}, content=path.read_bytes(),
                       headers={"Content-Type": "application/octet-stream"})


def test_upload_pcapng_summary_matches_known_counts(shared_data, client, settings):
    r = _upload(client, shared_data(CAIDA_1K))
    assert r.status_code == 201, r.text
    up = r.json()
    assert (up["kind"], up["format"], up["filename"]) == ("packets", "pcapng", "caida-1k.pcapng")
    s = up["summary"]
    # data/README.md: 1,000 packets, 767 hosts, 444 flows
    assert (s["records"], s["hosts"], s["flows"]) == (1000, 767, 444)
    assert "path" not in s
    stored = os.listdir(settings.uploads_dir)
    assert stored == [f"{up['id']}.pcapng"]
    assert client.get(f"/api/uploads/{up['id']}").json() == up
    assert [u["id"] for u in client.get("/api/uploads").json()] == [up["id"]]


def test_multipart_flow_csv_upload(shared_data, client):
    path = shared_data("ugr16/ugr16-1k.csv")
    r = client.post("/api/uploads", files={"file": ("ugr16.csv", path.read_bytes(), "text/csv")})
    assert r.status_code == 201, r.text
    up = r.json()
    assert (up["kind"], up["format"], up["summary"]["records"]) == ("flows", "csv", 1000)


def test_client_file_name_never_becomes_a_path(client, settings, sample):
    r = _upload(client, sample, name="../../../etc/passwd")
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["filename"] == "passwd"
    assert sorted(os.listdir(settings.uploads_dir)) == [f"{up['id']}.pcap"]
    assert not (settings.data_dir.parent / "etc").exists()


def test_binary_non_trace_is_415(client, settings):
    r = client.post("/api/uploads", content=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert r.status_code == 415
    assert "neither a pcap/pcapng capture nor a text flow-record file" in r.json()["detail"]
    assert os.listdir(settings.uploads_dir) == []


def test_text_that_is_no_flow_file_is_422(client, settings):
    r = client.post("/api/uploads", params={"filename": "notes.txt"},
                    content=b"dear diary,\ntoday I captured no packets at all.\n")
    assert r.status_code == 422
    assert r.json()["detail"].startswith("notes.txt: ")
    assert os.listdir(settings.uploads_dir) == []


def test_empty_upload_is_422(client):
    r = client.post("/api/uploads", content=b"")
    assert r.status_code == 422 and "empty" in r.json()["detail"]


def test_oversized_upload_is_413_and_leaves_nothing(shared_data, client, settings):
    big = shared_data("ndpi/alexa-app.pcapng")  # 1.5 MB against a 2 MiB limit: fine
    assert _upload(client, big).status_code == 201
    too_big = shared_data("ndpi/WebattackXSS.pcap")  # 4.9 MB
    r = _upload(client, too_big)
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["detail"]
    # streamed without a Content-Length header: the limit holds while reading
    data = too_big.read_bytes()
    r = client.post("/api/uploads", content=(data[i:i + 65536] for i in range(0, len(data), 65536)))
    assert r.status_code == 413
    assert len(os.listdir(settings.uploads_dir)) == 1


def test_truncated_capture_is_accepted_with_warning_or_rejected_cleanly(shared_data, client):
    path = shared_data("caida/caida-10k.pcapng")
    data = path.read_bytes()[:200_003]  # cut inside a packet block
    r = client.post("/api/uploads", content=data)
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        assert r.json()["summary"]["records"] > 0


@pytest.mark.parametrize("change, field", [
    ({"epochs": 0}, "epochs"),
    ({"scale": -1}, "scale"),
    ({"count": 10, "scale": 2.0}, "either count or scale"),
    ({"colour": "blue"}, "colour"),
    ({"preset": "zeek"}, "preset"),
    ({"dp_epsilon": 0}, "dp_epsilon"),
])
def test_bad_job_parameters_are_422_naming_the_field(idle_client, sample, change, field):
    up = _upload(idle_client, sample).json()
    r = idle_client.post("/api/jobs", json={"upload_id": up["id"], **change})
    assert r.status_code == 422
    assert field in r.text


def test_job_requests_that_do_not_fit_the_trace(idle_client, sample):
    up = _upload(idle_client, sample).json()
    cases = [({"preset": "netflow"}, 422, "models flows"),
             ({"overrides": {"word2vec": {"pretrained": "/etc/passwd"}}}, 422, "cannot be set through the service"),
             ({"overrides": {"model": {"no_such_knob": 1}}}, 422, "model.no_such_knob"),
             ({"overrides": {"model": {"sample_len": 7}}}, 422, "sample_len"),
             ({"upload_id": str(uuid.uuid4())}, 404, "upload the trace first")]
    for change, status, text in cases:
        r = idle_client.post("/api/jobs", json={"upload_id": up["id"], **change})
        assert r.status_code == status, (change, r.text)
        assert text in r.json()["detail"] if isinstance(r.json()["detail"], str) else text in r.text


def test_flow_records_cannot_be_written_as_pcap(shared_data, idle_client):
    path = shared_data("ugr16/ugr16-1k.csv")
    up = _upload(idle_client, path).json()
    r = idle_client.post("/api/jobs", json={"upload_id": up["id"], "output_format": "pcap"})
    assert r.status_code == 422 and "csv or parquet" in r.json()["detail"]
    r = idle_client.post("/api/jobs", json={"upload_id": up["id"]})
    assert r.status_code == 201 and r.json()["params"]["output_format"] == "csv"


def test_queue_operations_without_workers(idle_client, sample):
    """Queued job: cancel, resume, results refused until done, delete; unknown and malformed ids."""
    up = _upload(idle_client, sample).json()
    job = idle_client.post("/api/jobs", json={"upload_id": up["id"], "epochs": 3, "count": 100}).json()
    assert job["status"] == "queued" and job["resumable"] is False
    assert idle_client.get(f"/api/jobs/{job['id']}/synthetic").status_code == 409
    assert idle_client.post(f"/api/jobs/{job['id']}/resume").status_code == 409
    assert idle_client.delete(f"/api/uploads/{up['id']}").status_code == 409
    cancelled = idle_client.post(f"/api/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["resumable"] is True
    assert idle_client.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    assert idle_client.post(f"/api/jobs/{job['id']}/resume").json()["status"] == "queued"
    assert idle_client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert idle_client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert idle_client.get("/api/jobs/not-a-uuid").status_code == 422
    assert idle_client.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    assert idle_client.delete(f"/api/uploads/{up['id']}").status_code == 204
    assert idle_client.get(f"/api/uploads/{up['id']}").status_code == 404


def test_pages_render_and_openapi_documents_the_api(idle_client, sample):
    up = _upload(idle_client, sample).json()
    job = idle_client.post("/api/jobs", json={"upload_id": up["id"]}).json()
    home = idle_client.get("/")
    assert home.status_code == 200 and "ethereum.pcap" in home.text and job["id"][:8] in home.text
    page = idle_client.get(f"/uploads/{up['id']}")
    assert page.status_code == 200 and str(up["summary"]["records"]) in page.text
    assert idle_client.get(f"/jobs/{job['id']}").status_code == 200
    missing = idle_client.get(f"/jobs/{uuid.uuid4()}")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    paths = idle_client.get("/openapi.json").json()["paths"]
    for path in ("/api/uploads", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/resume",
                 "/api/jobs/{job_id}/synthetic", "/api/jobs/{job_id}/report"):
        assert path in paths
    assert idle_client.get("/docs").status_code == 200


def test_token_is_required_on_every_request(tmp_path):
    from fastapi.testclient import TestClient

    from tracesynth.service.app import create_app
    from tracesynth.service.settings import ServiceSettings

    app = create_app(ServiceSettings(data_dir=tmp_path / "d", token="s3cret"))
    client = TestClient(app)
    for path in ("/api/health", "/api/jobs", "/openapi.json", "/docs"):
        r = client.get(path)
        assert r.status_code == 401 and r.json()["detail"].startswith("missing or wrong token"), path
    for path in ("/", "/static/style.css", f"/jobs/{uuid.uuid4()}"):
        r = client.get(path)
        assert r.status_code == 401 and 'name="token"' in r.text, path
    assert client.post("/api/uploads", content=b"x").status_code == 401
    assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/login", data={"token": "nope", "next": "/"}).status_code == 401
    r = client.post("/login", data={"token": "s3cret", "next": "/"}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200  # the cookie now rides along
    assert client.get("/static/app.js").status_code == 200
