"""A batch's report rows as the pipeline leaves them, and what an HTML report page holds."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

HOSTILE_ID = '<img src="http://evil.invalid/x.png" onerror="alert(1)">'
HOSTILE_ERROR = "soe: AuthFailure: </td><script>alert(2)</script> see https://evil.invalid/ (auth)"


def row(
    key: str,
    status: str = "done",
    *,
    verdict: str | None = "PASS",
    error: str | None = None,
    soe: dict[str, Any] | None = None,
    **moderation: dict[str, Any],
) -> dict[str, Any]:
    """A report object of the contract's shape."""
    soe_obj = (
        None
        if soe is None
        else {
            "status": "done",
            "session_id": "s",
            "suggested_score": None,
            "pron_accuracy": None,
            "pron_fluency": None,
            "pron_completion": None,
            "chunks": 1,
            "error": None,
        }
        | soe
    )
    return {
        "id": key,
        "batch": "b",
        "audio": f"{key}.wav",
        "status": status,
        "error": error,
        "verdict": verdict,
        "soe": soe_obj,
        "moderation": {
            s: {
                "status": "done",
                "vendor_task_id": "t",
                "verdict": None,
                "labels": [],
                "text": None,
                "error": None,
            }
            | m
            for s, m in moderation.items()
        },
    }


def batch() -> list[tuple[dict[str, Any], float | None, list[str]]]:
    """Seven jobs: 4 done (2 PASS, 1 REVIEW, 1 REJECT), 2 failed, 1 rejected; (row, seconds to
    its result, failure reasons) as :class:`workers.report_html.Summary` takes them."""
    scores = {
        "suggested_score": 81.5,
        "pron_accuracy": 90.0,
        "pron_fluency": 0.95,
        "pron_completion": 1.0,
    }
    return [
        (row("a", soe=scores, gme={"verdict": "PASS"}, shumei={"verdict": "PASS"}), 1.0, []),
        (
            row(
                "b",
                soe=scores | {"suggested_score": 45.0, "pron_accuracy": -1.0},
                gme={"verdict": "PASS"},
                shumei={"verdict": "PASS"},
            ),
            2.0,
            [],
        ),
        (
            row(
                HOSTILE_ID,
                verdict="REVIEW",
                soe=scores,
                gme={"verdict": "PASS"},
                shumei={"verdict": "REVIEW", "labels": ["<b>ad</b>"]},
            ),
            3.0,
            [],
        ),
        (
            row(
                "d",
                verdict="REJECT",
                soe=scores,
                gme={"verdict": "REJECT", "labels": ["porn"]},
                shumei={"verdict": "PASS"},
            ),
            4.0,
            [],
        ),
        (
            row("e", "failed", verdict=None, error=HOSTILE_ERROR, soe={"status": "failed"}),
            5.0,
            ["soe: auth"],
        ),
        (
            row(
                "f",
                "failed",
                verdict="PASS",
                error="shumei: 1902: bad request (invalid)",
                shumei={"status": "failed", "error": "x"},
                gme={"verdict": "PASS"},
            ),
            9.0,
            ["shumei: invalid"],
        ),
        (
            row("g", "rejected", verdict=None, error="audio file not found: g.wav", soe=None),
            None,
            ["rejected: audio file not found"],
        ),
    ]


class Page(HTMLParser):
    """The parts of a report page the tests read: its sections and their charts' bars, the
    table's rows, the URLs any element refers to, and its text."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, dict[str, Any]] = {}
        self.rows: list[list[str]] = []
        self.references: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.elements: list[str] = []
        self.attributes: dict[str, dict[str, str | None]] = {}  # by id
        self.text: list[str] = []
        self._section: str | None = None
        self._cell: list[str] | None = None
        self._in_body = False
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append(tag)
        if "id" in a:
            self.attributes[a["id"]] = a
        for name, value in attrs:
            if name in ("src", "href", "action", "poster", "srcset", "data", "xlink:href") or (
                value and "url(" in value
            ):
                self.references.append((tag, name, value or ""))
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section] = {"charts": 0, "bars": {}}
        elif tag == "svg" and self._section:
            self.sections[self._section]["charts"] += 1
        elif tag == "g" and self._section and "bar" in (a.get("class") or "").split():
            self.sections[self._section]["bars"][a["data-label"]] = int(a["data-value"])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def bars(self, section: str) -> dict[str, int]:
        return self.sections[section]["bars"]
