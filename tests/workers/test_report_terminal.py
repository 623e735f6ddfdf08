"""``voxqueue report`` on a terminal (a pseudo-terminal of a set size): a table of the first jobs
that fits the window, the counts, and how to get all of it; JSON when asked for; and the end of
``voxqueue demo`` (what ``make demo`` runs): that table and the path of the batch's HTML page."""

from __future__ import annotations

import json
import os
import re

import pytest
from rich.cells import cell_len

from models.migrate import upgrade
from tests.workers.cli_helpers import seed
from tests.workers.pty_helpers import run_on_terminal
from tests.workers.report_pages import Page

COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|38;[0-9;]+|9[0-7])m")  # a foreground colour


def jobs(n: int = 40) -> list[dict]:
    specs = []
    for i in range(n):
        spec = {
            "key": f"j{i:02d}",
            "verdict": "PASS",
            "checks": {
                "soe": {"status": "done", "suggested_score": 50.0 + i},
                "gme": {"status": "done", "verdict": "PASS"},
                "shumei": {"status": "done", "verdict": "PASS"},
            },
        }
        if i == 1:
            spec |= {"key": "\x1b[31mred", "verdict": "REJECT"}
            spec["checks"]["gme"]["verdict"] = "REJECT"
        if i in (2, 30):
            spec |= {
                "status": "failed",
                "error": "soe: 4100: AuthFailure: the secret id is unknown " * 4,
            }
            spec["checks"]["soe"] = {"status": "failed", "error_reason": "auth"}
        specs.append(spec)
    return specs


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return env | extra


def test_report_on_a_terminal_is_a_table_that_fits(database_url):
    seed(database_url, "lesson", jobs())
    screen = run_on_terminal(
        "report", "--batch", "lesson", env=environment(), columns=100, lines=24
    )
    assert screen.returncode == 0, screen.text
    lines = screen.lines
    assert len(lines) == 23 and all(cell_len(line) <= 100 for line in lines), (
        screen.text
    )  # + the prompt
    assert lines[0].split() == ["id", "status", "SOE", "gme", "shumei", "error"]
    shown = lines[2:-3]
    assert [line.split()[0] for line in shown] == [
        "j00",
        "\\x1b[31mred",
        *(f"j{i:02d}" for i in range(2, len(shown))),
    ]
    assert shown[0].split()[:5] == ["j00", "done", "50.0", "PASS", "PASS"]
    assert shown[2].split()[:2] == ["j02", "failed"] and "soe: 4100: AuthFailure" in shown[2]
    assert shown[2].rstrip().endswith("…")  # the long error cut at the window's edge
    assert (
        lines[-3] == f"first {len(shown)} of 40 jobs: 38 done, 2 failed; verdicts 39 PASS, 1 REJECT"
    )
    assert lines[-2] == "all of it: voxqueue report --batch lesson --format json (or csv)"
    assert (
        lines[-1]
        == "with charts: voxqueue report --batch lesson --format html --output report.html"
    )
    assert (
        COLOUR.search(screen.raw) and "\x1b[31mred" not in screen.raw
    )  # its colours, not the id's

    asked = run_on_terminal(
        "report",
        "--batch",
        "lesson",
        "--status",
        "failed",
        "--format",
        "json",
        env=environment(),
        columns=100,
        lines=24,
    )
    assert asked.returncode == 0
    assert [row["id"] for row in json.loads(asked.text)] == ["j02", "j30"]  # the contract's JSON


@pytest.fixture
def lesson(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'report.db'}"
    upgrade(url)
    seed(url, "lesson", jobs())
    monkeypatch.setenv("VOXQUEUE_DATABASE_URL", url)


def test_a_narrow_terminal_without_colour(lesson):
    screen = run_on_terminal("report", env=environment(NO_COLOR="1"), columns=60, lines=15)
    assert screen.returncode == 0, screen.text
    lines = screen.lines
    assert len(lines) == 14 and all(cell_len(line) <= 60 for line in lines), screen.text
    assert lines[0].split()[:3] == ["id", "status", "SOE"] and lines[2].split()[:3] == [
        "j00",
        "done",
        "50.0",
    ]
    shown = sum(1 for line in lines if line.startswith(("j", "\\x1b")))
    assert f"first {shown} of 40 jobs" in screen.text and "--format html --output" in screen.text
    assert not COLOUR.search(screen.raw)

    html = run_on_terminal("report", "--format", "html", env=environment(), columns=100, lines=24)
    assert html.returncode == 2
    error = "voxqueue: error: --format html writes a page: add --output FILE (e.g. report.html)"
    assert html.lines == [error + " (see 'voxqueue report --help')"]


@pytest.mark.e2e
@pytest.mark.slow
def test_the_demo_ends_with_the_table_and_its_html_report(tmp_path):
    env = {
        k: v for k, v in environment().items() if k != "VOXQUEUE_BROKER_URL"
    }  # make demo's embedded one
    screen = run_on_terminal("demo", env=env, columns=100, lines=30, timeout=200)
    assert screen.returncode == 0, screen.text[-3000:]
    lines = screen.lines
    head = max(i for i, line in enumerate(lines) if line.split()[:2] == ["id", "status"])
    assert lines[head].split() == ["id", "status", "SOE", "gme", "shumei", "asr", "error"]
    rows = [line.split() for line in lines[head + 2 : head + 6]]
    assert [r[:2] for r in rows] == [[f"sample0{i}.wav", "done"] for i in range(1, 5)]
    assert all(float(r[2]) > 0 and r[3:6] == ["PASS", "PASS", "done"] for r in rows)
    assert lines[head + 6] == "4 jobs: 4 done; verdicts 4 PASS"
    assert "--format json" in lines[head + 7] and "--format html" in lines[head + 8]
    last = lines[-1]
    assert last.startswith("HTML report of batch demo-") and len(lines) == head + 10
    page = tmp_path / "var" / "reports" / (last.split(": ", 1)[0].rsplit(" ", 1)[-1] + ".html")
    assert last.endswith(str(page)) and all(cell_len(line) <= 100 for line in lines[head:-1])
    shown = Page(page.read_text())
    assert shown.bars("states") == {"done": 4} and len(shown.rows) == 4
    assert shown.bars("vendors") == {"gme PASS": 4, "shumei PASS": 4, "asr done": 4}
