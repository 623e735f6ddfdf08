"""The HTML report: inline SVG charts with the batch's counts, every text escaped, nothing that
refers outside the file, and a job table capped for large batches."""

from __future__ import annotations

import re

from tests.workers.cli_helpers import run, seed
from tests.workers.report_pages import HOSTILE_ERROR, HOSTILE_ID, Page, batch
from workers import charts, report_html
from workers.report_html import Summary, page, percentile

SECTIONS = [
    "states",
    "verdicts",
    "soe-suggested_score",
    "soe-pron_accuracy",
    "soe-pron_fluency",
    "soe-pron_completion",
    "vendors",
    "labels",
    "failures",
    "latency",
]


def summary() -> Summary:
    s = Summary()
    for row, seconds, reasons in batch():
        s.add(row, seconds, reasons)
    return s


def render(s: Summary, name: str | None = "b") -> str:
    return "".join(page(s, batch=name))


def test_bars_carry_their_counts_and_escape_their_labels():
    svg = charts.bars("jobs <by> state", [("done", 3), ("<script>x</script>", 1), ("a&b", 0)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'data-label="done" data-value="3"' in svg and 'data-value="0"' in svg
    assert "<script>" not in svg and "&lt;script&gt;x&lt;/script&gt;" in svg and "a&amp;b" in svg
    assert "jobs &lt;by&gt; state" in svg and "xmlns" not in svg


def test_an_empty_chart_says_so():
    assert "nothing to show" in charts.bars("x", []) and "nothing to show" in charts.histogram(
        "x", [0, 0], 0, 1
    )


def test_values_are_binned_with_what_falls_outside_counted_apart():
    assert charts.binned([0, 9.9, 10, 55, 100, -1, 101], 0, 100, 10) == (
        [2, 1, 0, 0, 0, 1, 0, 0, 0, 1],
        2,
    )


def test_percentiles_are_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert (
        percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile([], 50) is None
    )


def test_the_page_has_one_chart_per_section_with_the_counts():
    shown = Page(render(summary()))
    assert list(shown.sections) == SECTIONS
    assert all(section["charts"] == 1 for section in shown.sections.values())
    assert shown.bars("states") == {"done": 4, "failed": 2, "rejected": 1}
    assert shown.bars("verdicts") == {"PASS": 3, "REVIEW": 1, "REJECT": 1, "no verdict": 2}
    assert sum(shown.bars("soe-suggested_score").values()) == 4  # the failed one has no score
    assert shown.bars("soe-suggested_score")["80–90"] == 3
    assert sum(shown.bars("soe-pron_accuracy").values()) == 3  # SOE's -1 is outside, and said so
    assert "1 outside 0–100" in "".join(shown.text)
    assert shown.bars("vendors") == {
        "gme PASS": 4,
        "gme REJECT": 1,
        "shumei PASS": 3,
        "shumei REVIEW": 1,
        "shumei failed": 1,
    }
    assert shown.bars("labels") == {"shumei: <b>ad</b>": 1, "gme: porn": 1}
    assert shown.bars("failures") == {
        "soe: auth": 1,
        "shumei: invalid": 1,
        "rejected: audio file not found": 1,
    }
    assert sum(shown.bars("latency").values()) == 6
    assert "p50 3.00 s, p95 9.00 s" in "".join(shown.text)


def test_every_text_is_escaped_and_nothing_refers_outside_the_file():
    markup = render(summary(), name='<b onmouseover="x">')
    shown = Page(markup)
    assert (
        shown.elements.count("img") == 0 and shown.elements.count("script") == 1
    )  # the sort script
    assert shown.elements.count("b") == 0
    assert shown.references == [("link", "href", "data:,")]  # the favicon: none to fetch
    ids = [cells[0] for cells in shown.rows]
    assert HOSTILE_ID in ids and HOSTILE_ERROR in [cells[-1] for cells in shown.rows]
    assert 'voxqueue report: <b onmouseover="x">' in shown.text
    outside_text = re.sub(r">[^<]*<", "><", markup)  # the markup without its text
    assert not re.search(r"https?:|//[a-z]", outside_text), "a URL in the markup"
    policy = markup.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert policy.startswith("default-src 'none';")  # should a fetch ever slip in, it is blocked


def test_a_large_batch_shows_the_first_jobs_and_says_so(monkeypatch):
    monkeypatch.setattr(report_html, "TABLE_CAP", 3)
    s = summary()
    shown = Page(render(s, name="big one"))
    assert [cells[0] for cells in shown.rows] == ["a", "b", HOSTILE_ID]
    note = "".join(shown.text)
    assert (
        "The first 3 of 7 jobs" in note and "voxqueue report --batch 'big one' --format csv" in note
    )
    assert shown.bars("states") == {
        "done": 4,
        "failed": 2,
        "rejected": 1,
    }  # the charts count them all


def test_the_command_writes_the_page_of_a_batch(database_url, tmp_path):
    seed(
        database_url,
        "lesson",
        [
            {
                "key": "ok",
                "verdict": "PASS",
                "checks": {
                    "soe": {
                        "status": "done",
                        "suggested_score": 72.0,
                        "pron_accuracy": 80.0,
                        "pron_fluency": 0.9,
                        "pron_completion": 1.0,
                    },
                    "gme": {"status": "done", "verdict": "PASS", "labels": []},
                },
            },
            {
                "key": "bad",
                "status": "failed",
                "error": "soe: 4100: AuthFailure (auth)",
                "checks": {
                    "soe": {
                        "status": "failed",
                        "error_reason": "auth",
                        "error": "soe: 4100: AuthFailure (auth)",
                    }
                },
            },
            {"key": "nofile", "status": "rejected", "error": "audio file not found: nofile.wav"},
        ],
    )
    seed(database_url, "other", [{"key": "elsewhere"}])
    out = tmp_path / "report.html"
    proc = run("report", "--batch", "lesson", "--format", "html", "--output", str(out))
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    shown = Page(out.read_text())
    assert shown.bars("states") == {"done": 1, "failed": 1, "rejected": 1}
    assert shown.bars("failures") == {"soe: auth": 1, "rejected: audio file not found": 1}
    assert shown.bars("vendors") == {"gme PASS": 1}
    assert [cells[0] for cells in shown.rows] == ["ok", "bad", "nofile"]
    piped = run("report", "--batch", "lesson", "--format", "html")  # to stdout when piped
    assert piped.returncode == 0 and Page(piped.stdout).bars("states") == shown.bars("states")
