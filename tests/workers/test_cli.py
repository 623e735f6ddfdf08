"""The command line: exit codes 0/1/2, errors as one line on stderr, help that reads well."""

from __future__ import annotations

import pytest

from tests.workers.cli_helpers import one_line_error, run


@pytest.mark.parametrize("command", [[], ["ingest"], ["report"], ["stream", "close"], ["db", "upgrade"]])
def test_help(command):
    proc = run(*command, "--help")
    assert proc.returncode == 0 and "Usage: voxqueue" in proc.stdout


def test_usage_errors_exit_2():
    assert run("ingest").returncode == 2
    assert run("report", "--format", "xml").returncode == 2
    proc = run("ingest", "x.csv", "--services", "soe,nope")
    assert proc.returncode == 2 and "unknown service nope" in proc.stderr


def test_failures_are_one_line_exit_1(database_url, tmp_path):
    env = {"VOXQUEUE_DATABASE_URL": database_url}
    bad = tmp_path / "manifest.txt"
    bad.write_text("id,audio\n")
    proc = run("ingest", str(bad), env_extra=env)
    assert proc.returncode == 1
    assert one_line_error(proc) == f"voxqueue: error: {bad}: a manifest must be .csv or .jsonl, not .txt"
    proc = run("report", "--batch", "nope", env_extra=env)
    assert proc.returncode == 1 and one_line_error(proc) == "voxqueue: error: no batch named 'nope'"
    proc = run("wait", "--batch", "nope", "--timeout", "1", env_extra=env)
    assert proc.returncode == 1 and "no batch named 'nope'" in one_line_error(proc)


def test_an_unreachable_database_is_one_line_without_secrets(tmp_path):
    url = "postgresql+psycopg://voxqueue:s3cret-pw@127.0.0.1:1/nowhere"
    proc = run("status", env_extra={"VOXQUEUE_DATABASE_URL": url})
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert line.startswith("voxqueue: error:") and "s3cret-pw" not in proc.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_never_migrated_says_how_to_fix_it(backend, tmp_path, request):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    else:  # the migrated test database seen through a schema that holds no tables
        url = request.getfixturevalue("pg_database") + "?options=-csearch_path%3Dvq_no_such_schema"
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,audio,services\nr1,a.wav,soe\n")
    for args in (("ingest", str(manifest)), ("status",), ("report", "--batch", "b")):
        proc = run(*args, env_extra={"VOXQUEUE_DATABASE_URL": url})
        assert proc.returncode == 1, args
        line = one_line_error(proc)
        assert line.startswith("voxqueue: error: the database is not migrated (") and "[SQL:" not in line
        assert line.endswith("run `voxqueue db upgrade`"), line
