"""The producers' API on a real socket, a real database (SQLite and PostgreSQL) and Redis:
authentication, idempotent submission, uploads, limits, reading results."""

from __future__ import annotations

import contextlib
import hashlib
import json

import pytest
import redis
import requests
from sqlalchemy import select, update

from config.settings import get_settings, reset_settings
from models import Check, Job
from models.db import session_scope, transaction
from tasks import keys
from tasks.tokens import revoke
from tests.tasks.test_ingest import write_wav
from tests.workers.api_helpers import ApiClient, cli_report, cli_report_objects, new_token
from tests.workers.webhook_helpers import serve
from workers.api import create_app, server_options
from workers.api_body import Limits
from workers.api_spec import document

URL_AUDIO = "https://media.example/a.wav"


@contextlib.contextmanager
def served(**env: str):
    """The API with these settings, and a token."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        reset_settings()
        limits = Limits(body_s=2, idle_s=1)
        with serve(create_app(get_settings(), limits), server_options(limits)) as url:
            yield ApiClient(url, new_token("school"))
    reset_settings()


@pytest.fixture
def api(database_url, redis_url):
    with served() as client:
        yield client


def queued(redis_url: str, queue: str = "soe") -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return client.llen(queue)
    finally:
        client.close()


def rows(n: int = 2) -> list[dict]:
    return [{"id": f"pupil-{i}", "audio": URL_AUDIO, "ref_text": "red", "score_coeff": 1 + i} for i in range(n)]


def test_every_operation_answers_401_without_a_valid_token(api):
    operations = [(method, path) for path, item in document()["paths"].items() for method in item]
    assert len(operations) == 5
    revoked = new_token("former")
    revoke("former")
    for method, path in operations:
        url = api.url(path.replace("{batch}", "b").replace("{id}", "x"))
        for headers in ({}, {"Authorization": "Bearer vq_" + "x" * 43}, {"Authorization": f"Bearer {revoked}"},
                        {"Authorization": f"Basic {api.token}"}):
            response = requests.request(method, url, headers=headers, json=rows(1), timeout=10)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
    assert requests.get(api.url("/v1/openapi.json"), timeout=10).json()["openapi"].startswith("3.")


def test_posted_jobs_are_recorded_queued_and_read_back_as_the_report_has_them(api, redis_url):
    posted = rows(2) + [{"id": "no-text", "audio": URL_AUDIO}, {"audio": URL_AUDIO, "ref_text": "x"}]
    response = api.post_jobs("readings", posted)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert [(j["id"], j["status"], j["created"]) for j in answer["jobs"]] == [
        ("pupil-0", "pending", True), ("pupil-1", "pending", True), ("no-text", "rejected", True)]
    assert [(r["row"], r["id"]) for r in answer["rejected"]] == [(3, "no-text"), (4, None)]
    assert answer["rejected"][0]["reason"] == "soe needs ref_text (or keywords)"
    assert answer["queued"] == 2 and answer["deferred"] == 0 and queued(redis_url) == 2
    report = {row["id"]: row for row in cli_report_objects("readings")}
    for job in answer["jobs"]:
        assert api.get(job["url"]).json() == report[job["id"]]
    counts = api.get("/v1/batches/readings").json()
    assert counts["total"] == 3 and counts["finished"] is False
    assert counts["jobs"] == {"pending": 2, "running": 0, "done": 0, "failed": 0, "rejected": 1}
    assert counts["services"] == {"soe": {"pending": 2, "running": 0, "done": 0, "failed": 0}}
    assert api.get("/v1/batches/readings/jobs/nobody").status_code == 404


def test_posting_again_changes_and_sends_nothing_and_other_content_is_a_409(api, redis_url):
    assert api.post_jobs("readings", rows(2)).status_code == 202
    before = cli_report("readings")
    again = api.post_jobs("readings", rows(2))
    assert again.status_code == 202
    assert [(j["id"], j["created"]) for j in again.json()["jobs"]] == [("pupil-0", False), ("pupil-1", False)]
    assert again.json()["queued"] == 0 and queued(redis_url) == 2
    changed = rows(2)
    changed[1]["ref_text"] = "green"
    conflict = api.post_jobs("readings", [*changed, {"id": "new", "audio": URL_AUDIO, "ref_text": "x"}])
    assert conflict.status_code == 409
    error = conflict.json()["error"]
    assert error["code"] == "conflict"
    assert error["conflicts"] == [{"id": "pupil-1", "differences": {"ref_text": {"recorded": "red", "posted": "green"}}}]
    assert cli_report("readings") == before and queued(redis_url) == 2  # not even the new row


def test_a_token_sees_only_the_batches_it_made(api):
    assert api.post_jobs("readings", rows(1)).status_code == 202
    other = new_token("other-school")
    for path in ("/v1/batches/readings", "/v1/batches/readings/jobs/pupil-0", "/v1/batches/readings/report"):
        assert api.get(path, token=other).status_code == 404
    assert api.post("/v1/batches/readings/retry", token=other).status_code == 404
    taken = api.post_jobs("readings", rows(1), token=other)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "batch_taken"


def test_content_types_bodies_and_limits(database_url, redis_url):
    with served(VOXQUEUE_API_MAX_BODY_BYTES="2000") as api:
        url = api.url("/v1/batches/b/jobs")
        plain = requests.post(url, data="id,audio\n", headers={**api.headers(), "Content-Type": "text/csv"}, timeout=10)
        assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"
        big = requests.post(url, json=rows(40), headers=api.headers(), timeout=10)
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
        deep = requests.post(url, data="[" * 40 + "]" * 40, headers={**api.headers(), "Content-Type": "application/json"},
                             timeout=10)
        assert deep.status_code == 400 and "nested deeper" in deep.json()["error"]["message"]
        lines = "\n".join(json.dumps(r) for r in rows(2)) + "\nnot json\n"
        jsonl = requests.post(url, data=lines, headers={**api.headers(), "Content-Type": "application/x-ndjson"},
                              timeout=10)
        assert jsonl.status_code == 202
        assert [r["row"] for r in jsonl.json()["rejected"]] == [3]
        local = api.post_jobs("b", [{"id": "x", "audio": "/etc/passwd", "ref_text": "x"}]).json()
        assert local["rejected"][0]["reason"].startswith("local paths are not accepted here")


def _multipart(api: ApiClient, batch: str, jobs: list[dict], files: dict[str, bytes]) -> requests.Response:
    parts = [("jobs", (None, json.dumps(jobs), "application/json"))]
    parts += [("file", (name, data, "audio/wav")) for name, data in files.items()]
    return requests.post(api.url(f"/v1/batches/{batch}/jobs"), files=parts, headers=api.headers(), timeout=30)


def _stored() -> list:
    folder = get_settings().media_path / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_uploads_are_stored_under_the_media_folder_and_count_by_their_content(api, tmp_path):
    wav = write_wav(tmp_path / "a.wav").read_bytes()
    jobs = [{"id": "up", "audio": "a.wav", "ref_text": "red"}, {"id": "url", "audio": URL_AUDIO, "ref_text": "red"}]
    first = _multipart(api, "mixed", jobs, {"a.wav": wav})
    assert first.status_code == 202, first.text
    assert [j["created"] for j in first.json()["jobs"]] == [True, True]
    [stored] = _stored()
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(wav).hexdigest()
    with session_scope() as session:
        assert session.scalar(select(Job.audio).where(Job.key == "up")) == str(stored)
    again = _multipart(api, "mixed", jobs, {"a.wav": wav})
    assert [j["created"] for j in again.json()["jobs"]] == [False, False]
    assert _stored() == [stored]  # the second copy was not kept
    other = _multipart(api, "mixed", jobs, {"a.wav": write_wav(tmp_path / "b.wav", seconds=0.3).read_bytes()})
    assert other.status_code == 409
    assert list(other.json()["error"]["conflicts"][0]["differences"]) == ["audio"]
    assert _stored() == [stored]


def test_an_upload_over_its_services_limit_is_refused_and_leaves_nothing(api, tmp_path):
    wav = write_wav(tmp_path / "long.wav", seconds=160).read_bytes()  # 5.1 MB: Shumei takes 4.5 MB (base64 6 MB)
    rows_ = [{"id": "x", "audio": "long.wav", "services": "shumei"}]
    response = _multipart(api, "long", rows_, {"long.wav": wav})
    assert response.status_code == 413
    assert "long.wav" in response.json()["error"]["message"]
    assert _stored() == []
    assert api.get("/v1/batches/long").status_code == 404
    unused = _multipart(api, "u", [{"id": "x", "audio": URL_AUDIO, "ref_text": "red"}], {"stray.wav": wav[:1000]})
    assert unused.status_code == 400 and unused.json()["error"]["code"] == "unused_upload"
    assert _stored() == []


def test_a_notification_url_gets_a_secret_shown_once(api):
    hook = "https://hooks.example/voxqueue"
    first = api.post_jobs("b", rows(1), params={"notify_url": hook}).json()["notify"]
    second = api.post_jobs("b", rows(1), params={"notify_url": hook}).json()["notify"]
    assert second == {"url": hook} and first["url"] == hook
    from models import NotifyEndpoint

    with session_scope() as session:
        endpoint = session.scalars(select(NotifyEndpoint)).one()
    assert first["secret"] == keys.notify_secret(endpoint.id, endpoint.owner, hook, get_settings())
    bad = api.post_jobs("b", rows(1), params={"notify_url": "ftp://x"})
    assert bad.status_code == 400


def test_the_report_is_the_commands_in_json_and_csv(api):
    api.post_jobs("readings", rows(3))
    for fmt, ctype in (("json", "application/json"), ("csv", "text/csv")):
        response = api.get("/v1/batches/readings/report", params={"format": fmt})
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(ctype)
        assert response.text == cli_report("readings", fmt)
    assert api.get("/v1/batches/readings/report", params={"format": "xml"}).status_code == 400


def test_retry_sends_failed_work_again(api, redis_url):
    api.post_jobs("readings", rows(2))
    with transaction() as conn:
        conn.execute(update(Check).values(status="failed", error="soe: boom"))
    response = api.post("/v1/batches/readings/retry")
    assert response.status_code == 202 and response.json() == {"batch": "readings", "retried": 2, "deferred": 0}
    assert queued(redis_url) == 4
    assert api.post("/v1/batches/readings/retry", params={"service": "soe"}).json()["retried"] == 0
