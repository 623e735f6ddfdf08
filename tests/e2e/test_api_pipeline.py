"""The producers' API end to end: the API, a worker, the beat and the sandbox as real processes, and
a receiver that verifies every signature and answers 503 for its first 30 seconds.

A producer posts 20 jobs in one request, half of them uploaded and half as URLs. The batch is
done while the receiver still refuses everything (a receiver that is down never holds up the
pipeline); once it answers, it has every event exactly once by id: one ``job.finished`` per
job, whose report object is ``voxqueue report``'s, and one ``batch.finished``. Posting the same
jobs again changes nothing and sends nothing.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.pipeline import wait_until, write_speech_like_wav
from tests.receiver import Receiver, serve
from workers.processes import free_port, running, voxqueue_command, wait_http

pytestmark = [pytest.mark.e2e]

DOWN_S = 30.0
WORDS = ["red", "green", "good morning", "hello world"]


@pytest.fixture
def pipeline_env(tmp_path) -> dict[str, str]:
    (tmp_path / "media").mkdir()
    return {"VOXQUEUE_SANDBOX_MEDIA_DIR": str(tmp_path / "media"), "VOXQUEUE_POLL_INTERVAL": "1",
            "VOXQUEUE_NOTIFY_BACKOFF_MAX_SECONDS": "2", "VOXQUEUE_MEDIA_DIR": str(tmp_path / "uploads")}


@pytest.fixture
def receiver():
    found, down_until = Receiver(), []

    def status() -> int:  # 503 until DOWN_S after the jobs are posted, then 200
        return 503 if not down_until or time.monotonic() < down_until[0] else 200

    found.status = status
    found.down_until = down_until
    server, found.url = serve(found)
    yield found
    server.shutdown()


def _request(tmp_path, sandbox_url: str):
    """20 rows, the even ones uploaded, the odd ones at the sandbox's media URL; and the files."""
    jobs, files = [], []
    for i in range(20):
        name = f"pupil{i:02}.wav"
        folder = tmp_path / ("upload" if i % 2 == 0 else "media")
        folder.mkdir(exist_ok=True)
        path = write_speech_like_wav(folder / name, 0.05 + (i % 5) * 0.05, seed=i)
        audio = name if i % 2 == 0 else f"{sandbox_url}/media/{name}"
        jobs.append({"id": f"pupil-{i:02}", "audio": audio, "ref_text": WORDS[i % len(WORDS)]})
        if i % 2 == 0:
            files.append(("file", (name, path.read_bytes(), "audio/wav")))
    return [("jobs", (None, json.dumps(jobs), "application/json")), *files]


def test_twenty_jobs_through_the_api_each_notified_once_past_a_receiver_down_for_30s(pipeline, tmp_path, receiver):
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    api = pipeline.stack.enter_context(running(voxqueue_command("api", "--port", str(port)), pipeline.env,
                                               pipeline.logs / "api.log"))
    pipeline.start_worker("-c", "4")
    pipeline.start_beat()
    token = pipeline.cli("api", "token", "create", "producer").stdout.strip()
    wait_http(api_url + "/healthz", api)
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{api_url}/v1/batches/lessons/jobs"
    body = _request(tmp_path, pipeline.sandbox_url)

    receiver.down_until.append(time.monotonic() + DOWN_S)
    posted = requests.post(url, params={"notify_url": receiver.url}, files=body, headers=auth, timeout=60)
    assert posted.status_code == 202, posted.text
    answer = posted.json()
    receiver.know(answer["notify"]["secret"])
    assert len(answer["jobs"]) == 20 and answer["rejected"] == [] and answer["queued"] == 20

    pipeline.wait("lessons", 60)
    done_at = time.monotonic()
    print(f"\nbatch done {done_at - (receiver.down_until[0] - DOWN_S):.1f}s after the post")
    assert done_at < receiver.down_until[0]  # done while every delivery failed

    wait_until(lambda: len(receiver.accepted) >= 21, DOWN_S + 30)
    print(f"every event delivered {time.monotonic() - receiver.down_until[0]:.1f}s after the receiver came back, "
          f"in {len(receiver.attempts)} requests")
    time.sleep(2.5)  # a straggler would come within the backoff's cap
    assert receiver.forged == 0
    events = receiver.accepted
    assert len(events) == 21 and len({e["id"] for e in events}) == 21  # each once
    assert {event_id for event_id, _ in receiver.attempts} == {e["id"] for e in events}  # no id lost or new
    assert any(status == 503 for _, status in receiver.attempts)
    report = {row["id"]: row for row in pipeline.report("lessons")}
    finished = [e for e in events if e["type"] == "job.finished"]
    assert sorted(e["data"]["id"] for e in finished) == sorted(report)
    for event in finished:
        assert event["data"] == report[event["data"]["id"]]
        assert event["data"]["status"] == "done" and event["data"]["soe"]["suggested_score"] is not None
    [batch] = [e for e in events if e["type"] == "batch.finished"]
    assert batch["data"]["jobs"]["done"] == 20 and batch["data"]["finished"] is True
    for job in answer["jobs"]:
        assert requests.get(api_url + job["url"], headers=auth, timeout=10).json() == report[job["id"]]

    attempts = len(receiver.attempts)
    again = requests.post(url, params={"notify_url": receiver.url}, files=_request(tmp_path, pipeline.sandbox_url),
                          headers=auth, timeout=60)
    assert again.status_code == 202
    assert {j["created"] for j in again.json()["jobs"]} == {False} and again.json()["queued"] == 0
    assert "secret" not in again.json()["notify"]
    time.sleep(3)  # three notification rounds
    assert len(receiver.attempts) == attempts
    assert {row["id"]: row for row in pipeline.report("lessons")} == report
    status = pipeline.cli("notify", "status", "--batch", "lessons").stdout
    assert status.splitlines()[0] == "notifications: 0 pending, 21 delivered, 0 dead"
