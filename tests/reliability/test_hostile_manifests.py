"""The real ``voxqueue ingest`` on hostile manifests (issue 20): every bad row one line, the
good rows recorded and queued, one clear error line when the source or the database fails.

The command runs as a user runs it (a subprocess, Redis as the broker, SQLite and
PostgreSQL); what was queued is read back from Redis.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, select, text

from models import Batch, Check
from models.db import session_scope
from tests.tasks.manifest_checks import assert_consistent, recorded, write_wav
from tests.tasks.test_manifest_hostile import COLUMNS, CSV_CASES, JSONL_CASES, cleanup
from workers.processes import voxqueue_command

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(voxqueue_command("ingest", *args), env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def env(database_url, redis_url, tmp_path) -> dict[str, str]:
    return dict(os.environ) | {"VOXQUEUE_DATABASE_URL": database_url, "VOXQUEUE_BROKER_URL": redis_url,
                               "VOXQUEUE_VAR_DIR": str(tmp_path / "var")}


def queued_checks(redis_url: str) -> list[int]:
    """The check ids in the messages waiting on the soe queue."""
    client = redis.Redis.from_url(redis_url)
    try:
        ids: list[int] = []
        for raw in client.lrange("soe", 0, -1):
            args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
            ids += args[0] if isinstance(args[0], list) else [args[0]]
        return ids
    finally:
        client.close()


def all_checks() -> list[int]:
    with session_scope() as session:
        return sorted(session.scalars(select(Check.id)))


def hostile_manifest(folder: Path, fmt: str) -> tuple[Path, list[tuple[str, str]]]:
    """Every case of the tasks suite in one manifest, each in a folder of its own, a good row
    after every fifth; (case name, reason fragment) in manifest order, None for a good row."""
    cases = CSV_CASES if fmt == "csv" else JSONL_CASES
    rows, expected = [], []
    for i, (name, make, fragment) in enumerate(cases):
        sub = folder / f"c{i}"
        sub.mkdir()
        write_wav(sub / "good.wav")
        rows.append(_in_folder(make(sub), f"c{i}", name))
        expected.append((name, fragment))
        if i % 5 == 4:
            rows.append({"id": f"good-{i}", "audio": f"c{i}/good.wav", "ref_text": "red"})
            expected.append((f"good-{i}", None))
    path = folder / f"hostile.{fmt}"
    if fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path, expected


def _in_folder(row: dict | str, sub: str, name: str) -> dict | str:
    """The case's row with its own id, its relative audio path under its folder."""
    if isinstance(row, str):
        return row.replace('"bad"', json.dumps(f"bad-{name}"))
    row = dict(row)
    if row.get("id") == "bad":
        row["id"] = f"bad-{name}"
    audio = row.get("audio")
    if isinstance(audio, str) and not URL.match(audio) and not audio.startswith("/") and len(audio) < 1000:
        row["audio"] = f"{sub}/{audio}"
    return row


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_hostile_row_is_one_line_and_the_rest_is_queued(env, redis_url, tmp_path, fmt):
    folder = tmp_path / "data"
    folder.mkdir()
    manifest, expected = hostile_manifest(folder, fmt)
    try:
        proc = run(env, str(manifest), "--batch", "hostile")
    finally:
        for sub in folder.iterdir():
            cleanup(sub) if sub.is_dir() else None
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    good = sum(1 for _, fragment in expected if fragment is None)
    bad = len(expected) - good
    assert proc.stdout.strip() == (f"batch hostile: {good} accepted, {bad} rejected; "
                                   f"{len(expected)} jobs recorded, {good} checks queued")
    lines = proc.stderr.splitlines()
    assert len(lines) == bad and all(line.startswith("rejected ") for line in lines), proc.stderr[-3000:]
    jobs = assert_consistent("hostile")
    assert len(jobs) == len(expected)
    for job, (name, fragment) in zip(jobs, expected):
        if fragment is None:
            assert job.status == "pending", (name, job.error)
        else:
            assert job.status == "rejected" and fragment in job.error, (name, job.error)
            assert f"rejected {job.key}: {job.error}" in lines
    assert sorted(queued_checks(redis_url)) == all_checks()


def install_failure(url: str, key: str) -> None:
    """A database that fails the insert of the job ``key``, as a full disk or a lost server would."""
    engine = create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER vq_fail BEFORE INSERT ON jobs WHEN NEW.key = :key "
                              "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END".replace(":key", f"'{key}'")))
        else:
            conn.execute(text("CREATE FUNCTION vq_fail() RETURNS trigger AS $$ BEGIN IF NEW.key = "
                              f"'{key}' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$ "
                              "LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER vq_fail BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION vq_fail()"))
    engine.dispose()


def remove_failure(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS vq_fail" + ("" if engine.dialect.name == "sqlite" else " ON jobs")))
        if engine.dialect.name != "sqlite":
            conn.execute(text("DROP FUNCTION IF EXISTS vq_fail()"))
    engine.dispose()


def test_a_stop_part_way_says_what_was_recorded_and_the_next_run_continues(env, redis_url, database_url, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_wav(folder / "good.wav")
    rows = [f"r{i:03},good.wav,red" for i in range(120)] + [",good.wav,red"]  # the last one has no id
    (folder / "stop.csv").write_text("id,audio,ref_text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    install_failure(database_url, "r099")
    try:
        stopped = run(env, str(folder / "stop.csv"))
    finally:
        remove_failure(database_url)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    (line,) = stopped.stderr.splitlines()
    assert line.startswith("voxqueue: error: database: disk on fire; ingest stopped: ")
    assert line.endswith("the rows up to row 51 are recorded in batch stop (50 accepted, 0 rejected; "
                         "50 checks queued); running the same ingest again continues from there")
    assert len(recorded("stop")) == 50 and len(queued_checks(redis_url)) == 50

    again = run(env, str(folder / "stop.csv"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == ("batch stop: 70 accepted, 1 rejected, 50 already recorded (50 of their "
                                    "checks not started: queued again); 71 jobs recorded, 120 checks queued")
    assert again.stderr.strip() == "rejected #row 122: row has no id"
    jobs = assert_consistent("stop")
    assert [j.key for j in jobs] == [f"r{i:03}" for i in range(120)] + ["#row 122"]
    queued = queued_checks(redis_url)  # no worker ran: the first 50 are queued twice (a claim takes one)
    assert sorted(set(queued)) == all_checks() and len(queued) == 50 + 120


@pytest.mark.parametrize(("args", "message"), [
    (["--batch", "b" * 201], "the batch name is 201 characters; at most 200 (give a shorter --batch)"),
    (["--batch", "   "], "the batch name is empty"),
])
def test_a_batch_name_that_cannot_be_stored_is_one_line(env, tmp_path, args, message):
    (tmp_path / "m.csv").write_text("id,audio,ref_text\nr1,a.wav,red\n", encoding="utf-8")
    proc = run(env, str(tmp_path / "m.csv"), *args)
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"voxqueue: error: {message}")
    with session_scope() as session:
        assert list(session.scalars(select(Batch))) == []


def test_unreadable_sources_are_one_line_naming_the_file(env, tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")  # would block a reader for ever
    (tmp_path / "latin1.csv").write_bytes("id,audio\ncaf\u00e9,a.wav\n".encode("latin-1"))
    os.symlink("/dev/urandom", tmp_path / "random.jsonl")
    for name, message in [("pipe.csv", "not a regular file but a FIFO (named pipe)"),
                          ("latin1.csv", "not UTF-8 text (byte 12)"),
                          ("random.jsonl", "not a regular file but a character device")]:
        proc = run(env, str(tmp_path / name))
        assert proc.returncode == 1, name
        assert proc.stderr.splitlines() == [f"voxqueue: error: {tmp_path / name}: {message}"]
    with session_scope() as session:
        assert list(session.scalars(select(Batch))) == []
