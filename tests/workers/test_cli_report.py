"""``voxqueue report``: a file is replaced only by a complete report, and CSV cells cannot run
as spreadsheet formulas (OWASP, CSV injection), while numbers stay numbers."""

from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest

from tests.workers.cli_helpers import one_line_error, run, seed

PREVIOUS = b"the previous report\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def failing_database(request, tmp_path) -> str:
    """A database that fails when the report is read: a file that is not a database; a server
    on a closed port."""
    if request.param == "sqlite":
        path = tmp_path / "broken.db"
        path.write_bytes(b"this is not an SQLite database\n" * 200)
        return f"sqlite:///{path}"
    return "postgresql+psycopg://postgres@127.0.0.1:1/voxqueue"


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_failing_database_leaves_the_file_as_it_was(failing_database, tmp_path, fmt):
    out = tmp_path / "reports" / f"report.{fmt}"
    out.parent.mkdir()
    out.write_bytes(PREVIOUS)
    proc = run("report", "--format", fmt, "--output", str(out),
               env_extra={"VOXQUEUE_DATABASE_URL": failing_database})
    assert proc.returncode == 1
    assert one_line_error(proc).startswith(("voxqueue: error: database: ", "voxqueue: error: the database"))
    assert out.read_bytes() == PREVIOUS
    assert os.listdir(out.parent) == [out.name]  # no temporary file left behind


def test_a_failing_database_prints_nothing_on_stdout(failing_database):
    proc = run("report", env_extra={"VOXQUEUE_DATABASE_URL": failing_database})
    assert proc.returncode == 1 and proc.stdout == ""
    one_line_error(proc)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_complete_report_replaces_the_file_keeping_its_mode(database_url, tmp_path):
    seed(database_url, "b", [{"key": "a"}, {"key": "b"}])
    old = tmp_path / "old.json"
    old.write_bytes(PREVIOUS)
    old.chmod(0o640)
    new = tmp_path / "new.json"
    for path in (old, new):
        proc = run("report", "--output", str(path))
        assert proc.returncode == 0 and proc.stdout == "", proc.stderr
        assert [row["id"] for row in json.loads(path.read_text())] == ["a", "b"]
    assert stat.S_IMODE(old.stat().st_mode) == 0o640
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json" or ".tmp" in p.name) == \
        ["new.json", "old.json"]


def test_a_report_through_a_symlink_replaces_its_target(database_url, tmp_path):
    seed(database_url, "b", [{"key": "a"}])
    target = tmp_path / "target.json"
    target.write_bytes(PREVIOUS)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    proc = run("report", "--output", str(link))
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and json.loads(target.read_text())[0]["id"] == "a"


def test_a_file_that_cannot_be_written_is_one_line(tmp_path):
    for path in (tmp_path / "no-such-dir" / "r.json", tmp_path):
        proc = run("report", "--output", str(path))
        assert proc.returncode == 1
        assert one_line_error(proc).startswith(f"voxqueue: error: {path}: ")


FORMULAS = ["=1+1", "+SUM(A1:A2)", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def _hostile_batch(url: str) -> None:
    jobs = [{"key": key} for key in FORMULAS]
    jobs += [{"key": "plain"}, {"key": "a=b"}]
    jobs.append({
        "key": "scored", "audio": "-rf.wav", "status": "failed", "error": '=HYPERLINK("http://example.invalid","x")',
        "verdict": "REJECT",
        "checks": {"soe": {"status": "done", "suggested_score": -1.0, "pron_accuracy": -0.5, "chunks_sent": 3},
                   "gme": {"status": "done", "verdict": "REJECT", "labels": ["=cmd|' /C calc'!A0", "porn"],
                           "vendor_task_id": "@task"}},
    })
    seed(url, "b", jobs)


def test_csv_cells_cannot_run_as_formulas(database_url, tmp_path):
    _hostile_batch(database_url)
    proc = run("report", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout, newline="")))
    assert [row["id"] for row in rows] == [f"'{key}" for key in FORMULAS] + ["plain", "a=b", "scored"]
    scored = rows[-1]
    assert scored["error"] == "'" + '=HYPERLINK("http://example.invalid","x")' and scored["audio"] == "'-rf.wav"
    assert scored["soe.suggested_score"] == "-1.0" and scored["soe.pron_accuracy"] == "-0.5"  # numbers
    assert scored["soe.chunks"] == "3" and scored["verdict"] == "REJECT"
    assert scored["moderation.gme.labels"] == "'=cmd|' /C calc'!A0|porn"
    assert scored["moderation.gme.vendor_task_id"] == "'@task"
    out = tmp_path / "r.csv"
    assert run("report", "--format", "csv", "--output", str(out)).returncode == 0
    assert out.read_bytes().decode() == proc.stdout


def test_the_json_report_keeps_every_value(database_url):
    _hostile_batch(database_url)
    proc = run("report")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [row["id"] for row in rows] == [*FORMULAS, "plain", "a=b", "scored"]
    assert rows[-1]["soe"]["suggested_score"] == -1.0 and rows[-1]["audio"] == "-rf.wav"
