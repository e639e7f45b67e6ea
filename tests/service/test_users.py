"""Users (issue 14, item 9): a token each, stored hashed; uploads and jobs owned by their user; an admin
sees everything; one user can neither read, list, download nor delete another's (404, as if absent)."""
from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest

from tracesynth.cli import main
from tracesynth.service.users import add_user, remove_user

pytest.importorskip("fastapi")


@pytest.fixture
def team(settings, sample):
    """alice and bob (users), root (admin); one upload and one queued job each for alice and bob."""
    from fastapi.testclient import TestClient

    from tracesynth.service.app import create_app

    tokens = {name: add_user(settings.users_path, name, admin=(name == "root")) for name in ("alice", "bob", "root")}
    client = TestClient(create_app(settings))  # no scheduler: jobs stay queued
    h = {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}
    owned = {}
    for name in ("alice", "bob"):
        up = client.post("/api/uploads", content=sample.read_bytes(), headers=h[name]).json()
        job = client.post("/api/jobs", json={"upload_id": up["id"], "epochs": 1}, headers=h[name]).json()
        owned[name] = (up, job)
    return client, h, owned, tokens


def test_tokens_are_stored_hashed_and_file_is_private(settings):
    token = add_user(settings.users_path, "carol")
    text = settings.users_path.read_text()
    assert token not in text and hashlib.sha256(token.encode()).hexdigest() in text
    assert len(token) >= 40 and token.startswith("ts_")
    assert os.stat(settings.users_path).st_mode & 0o077 == 0


def test_each_user_sees_only_their_own(team):
    client, h, owned, _ = team
    (a_up, a_job), (b_up, b_job) = owned["alice"], owned["bob"]
    assert a_up["owner"] == "alice" and a_job["owner"] == "alice"
    assert [u["id"] for u in client.get("/api/uploads", headers=h["alice"]).json()] == [a_up["id"]]
    assert [j["id"] for j in client.get("/api/jobs", headers=h["alice"]).json()] == [a_job["id"]]
    assert [j["id"] for j in client.get("/api/jobs", headers=h["bob"]).json()] == [b_job["id"]]
    home = client.get("/", headers=h["alice"]).text
    assert a_job["id"][:8] in home and b_job["id"][:8] not in home


@pytest.mark.parametrize("method, path", [
    ("get", "/api/uploads/{up}"), ("delete", "/api/uploads/{up}"), ("get", "/api/jobs/{job}"),
    ("get", "/api/jobs/{job}/synthetic"), ("get", "/api/jobs/{job}/report"), ("get", "/api/jobs/{job}/log"),
    ("post", "/api/jobs/{job}/cancel"), ("post", "/api/jobs/{job}/resume"), ("delete", "/api/jobs/{job}"),
    ("get", "/jobs/{job}"), ("get", "/uploads/{up}"),
])
def test_another_users_things_are_404(team, method, path):
    client, h, owned, _ = team
    up, job = owned["bob"]
    url = path.format(up=up["id"], job=job["id"])
    r = getattr(client, method)(url, headers=h["alice"])
    assert r.status_code == 404, r.text
    # and it is untouched: bob still has it, queued
    assert client.get(f"/api/jobs/{job['id']}", headers=h["bob"]).json()["status"] == "queued"
    assert client.get(f"/api/uploads/{up['id']}", headers=h["bob"]).status_code == 200


def test_no_job_on_another_users_upload(team):
    client, h, owned, _ = team
    r = client.post("/api/jobs", json={"upload_id": owned["bob"][0]["id"]}, headers=h["alice"])
    assert r.status_code == 404 and "upload the trace first" in r.json()["detail"]


def test_admin_sees_and_manages_everything(team):
    client, h, owned, _ = team
    ids = {j["id"] for j in client.get("/api/jobs", headers=h["root"]).json()}
    assert ids == {owned["alice"][1]["id"], owned["bob"][1]["id"]}
    assert len(client.get("/api/uploads", headers=h["root"]).json()) == 2
    job = owned["bob"][1]
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=h["root"]).json()["status"] == "cancelled"
    assert client.delete(f"/api/jobs/{job['id']}", headers=h["root"]).status_code == 204
    assert client.get(f"/api/jobs/{job['id']}", headers=h["bob"]).status_code == 404


def test_owner_manages_their_own(team):
    client, h, owned, _ = team
    up, job = owned["alice"]
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=h["alice"]).json()["status"] == "cancelled"
    assert client.delete(f"/api/jobs/{job['id']}", headers=h["alice"]).status_code == 204
    assert client.delete(f"/api/uploads/{up['id']}", headers=h["alice"]).status_code == 204


def test_unknown_or_removed_token_is_401_and_login_works(team, settings):
    client, h, _, tokens = team
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": "Bearer ts_wrong"}).status_code == 401
    assert client.post("/login", data={"token": "nope", "next": "/"}).status_code == 401
    r = client.post("/login", data={"token": tokens["bob"], "next": "/"}, follow_redirects=False)
    assert r.status_code == 303
    assert len(client.get("/api/jobs").json()) == 1  # the cookie is bob's
    client.cookies.clear()
    remove_user(settings.users_path, "alice")  # the running server notices the changed file
    assert client.get("/api/jobs", headers=h["alice"]).status_code == 401
    assert client.get("/api/jobs", headers=h["bob"]).status_code == 200


def test_single_user_mode_needs_no_set_up(idle_client, sample):
    up = idle_client.post("/api/uploads", content=sample.read_bytes()).json()
    assert up["owner"] == ""
    assert [u["id"] for u in idle_client.get("/api/uploads").json()] == [up["id"]]


def test_database_of_an_older_server_gets_owners(settings):
    """A state.sqlite3 without owner columns (before users) is migrated; its rows belong to ''."""
    import sqlite3

    from tracesynth.service.store import Store

    settings.data_dir.mkdir(parents=True)
    db = sqlite3.connect(settings.db_path)
    db.execute("CREATE TABLE uploads (id TEXT PRIMARY KEY, filename TEXT NOT NULL, stored_name TEXT NOT NULL, "
               "size INTEGER NOT NULL, format TEXT NOT NULL, kind TEXT NOT NULL, summary TEXT NOT NULL, "
               "created REAL NOT NULL)")
    db.execute("INSERT INTO uploads VALUES ('u1', 'a.pcap', 'u1.pcap', 1, 'pcap', 'packets', '{}', 1.0)")
    db.commit()
    db.close()
    store = Store(settings.db_path)
    (rec,) = store.list_uploads()
    assert (rec.id, rec.owner) == ("u1", "")


def test_users_cli(tmp_path, capsys):
    data = tmp_path / "d"
    assert main(["serve", "users", "add", "dana", "--admin", "--data-dir", str(data)]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("ts_") and "shown once" in out.err
    assert json.loads((data / "users.json").read_text())["users"][0]["admin"] is True
    assert main(["serve", "users", "add", "dana", "--data-dir", str(data)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["serve", "users", "add", "../x", "--data-dir", str(data)]) == 2
    assert main(["serve", "users", "list", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.split() == ["dana", "admin"]
    assert main(["serve", "users", "remove", "dana", "--data-dir", str(data)]) == 0
    assert main(["serve", "users", "remove", "dana", "--data-dir", str(data)]) == 2
    (data / "users.json").write_text("{not json")
    assert main(["serve", "users", "list", "--data-dir", str(data)]) == 2
    assert "not a tracesynth users file" in capsys.readouterr().err


def test_unused_uuid_is_404_for_everyone(team):
    client, h, _, _ = team
    for name in ("alice", "root"):
        assert client.get(f"/api/jobs/{uuid.uuid4()}", headers=h[name]).status_code == 404


def test_damaged_users_file_refuses_start_but_not_a_running_server(team, settings):
    from tracesynth.errors import UserError
    from tracesynth.service.app import create_app

    client, h, _, _ = team
    settings.users_path.write_text('{"users": [{"name": 1}]}')
    assert client.get("/api/jobs", headers=h["alice"]).status_code == 200  # the users read before still hold
    with pytest.raises(UserError, match="not a tracesynth users file"):
        create_app(settings)
