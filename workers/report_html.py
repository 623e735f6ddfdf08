"""``voxqueue report --format html``: one self-contained page of a batch, charts and a table.

The charts count every job; the table holds the first :data:`TABLE_CAP` (and says so), so a
batch of any size renders quickly. Everything is inline: the SVG of :mod:`workers.charts`, a
style sheet and a script that sorts the table, under a Content-Security-Policy that lets the
page fetch nothing at all.
"""

from __future__ import annotations

import base64
import hashlib
import math
import shlex
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html import escape
from typing import IO, Any

from models.report import MODERATION
from workers import charts

TABLE_CAP = 2000
STATES = ("pending", "running", "done", "failed", "rejected")
VERDICTS = ("PASS", "REVIEW", "REJECT")
# name, field, range of SOE's numbers (PronFluency and PronCompletion are fractions)
SCORES = (
    ("suggested score", "suggested_score", 100.0),
    ("accuracy", "pron_accuracy", 100.0),
    ("fluency", "pron_fluency", 1.0),
    ("completion", "pron_completion", 1.0),
)
TOP_REASONS = 12
NO_VERDICT = "no verdict"


@dataclass
class Summary:
    """What the charts show, gathered one job at a time."""

    total: int = 0
    states: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)
    scores: dict[str, list[float]] = field(default_factory=lambda: {f: [] for _, f, _ in SCORES})
    vendors: dict[str, Counter] = field(default_factory=dict)  # service -> verdict or state
    labels: Counter = field(default_factory=Counter)  # "service: label"
    failures: Counter = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    rows: list[tuple[dict[str, Any], float | None]] = field(default_factory=list)

    def add(self, row: dict[str, Any], seconds: float | None, reasons: Iterable[str]) -> None:
        self.total += 1
        self.states[row["status"]] += 1
        self.verdicts[row["verdict"] or NO_VERDICT] += 1
        soe = row["soe"] or {}
        for _, name, _ in SCORES:
            if soe.get(name) is not None:
                self.scores[name].append(soe[name])
        for service, check in row["moderation"].items():
            self.vendors.setdefault(service, Counter())[check["verdict"] or check["status"]] += 1
            self.labels.update(f"{service}: {label}" for label in check["labels"] or [])
        self.failures.update(reasons)
        if seconds is not None:
            self.seconds.append(seconds)
        if len(self.rows) < TABLE_CAP:
            self.rows.append((row, seconds))


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0–100) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def write_html(out: IO[str], summary: Summary, *, batch: str | None) -> None:
    out.writelines(page(summary, batch=batch))


def page(s: Summary, *, batch: str | None) -> Iterator[str]:
    title = f"voxqueue report: {batch}" if batch is not None else "voxqueue report: all batches"
    yield (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{escape(title)}</title><style>{STYLE}</style>'
        f"</head><body><h1>{escape(title)}</h1>"
    )
    yield f'<p class="lead">{_lead(s)}</p><div class="grid">'
    yield from sections(s)
    yield "</div>"
    yield from _table(s, batch)
    yield f"<script>{SCRIPT}</script></body></html>\n"


def _lead(s: Summary) -> str:
    p50, p95 = percentile(s.seconds, 50), percentile(s.seconds, 95)
    timing = f"; ingest to result p50 {p50:.1f} s, p95 {p95:.1f} s" if p50 is not None else ""
    states = ", ".join(f"{s.states[k]:,} {k}" for k in _ordered(s.states, STATES))
    return escape(f"{s.total:,} jobs: {states or 'none'}{timing}")


def sections(s: Summary) -> Iterator[str]:
    """One ``<section>`` per chart."""
    yield _section(
        "states",
        "Jobs by state",
        charts.bars("jobs by state", [(k, s.states[k]) for k in _ordered(s.states, STATES)]),
    )
    yield _section(
        "verdicts",
        "Jobs by verdict",
        charts.bars(
            "jobs by verdict",
            [(k, s.verdicts[k]) for k in _ordered(s.verdicts, (*VERDICTS, NO_VERDICT))],
        ),
    )
    for label, name, hi in SCORES:
        values = s.scores[name]
        counts, outside = charts.binned(values, 0.0, hi, 10)
        note = f"{len(values):,} scored" + (
            f", {outside:,} outside 0–{hi:g} (e.g. -1)" if outside else ""
        )
        yield _section(
            f"soe-{name}", f"SOE {label}", charts.histogram(f"SOE {label}", counts, 0.0, hi), note
        )
    vendors = [v for v in MODERATION if v in s.vendors]
    keys = _ordered(sum((s.vendors[v] for v in vendors), Counter()), (*VERDICTS, *STATES))
    yield _section(
        "vendors",
        "Verdicts per vendor",
        charts.stacked("verdicts per vendor", [(v, s.vendors[v]) for v in vendors], keys),
    )
    yield _section(
        "labels",
        "Labels per vendor",
        charts.bars("labels per vendor", _top(s.labels)),
        f"{sum(s.labels.values()):,} labels",
    )
    yield _section(
        "failures",
        "Failures by reason",
        charts.bars("failures by reason", _top(s.failures)),
        f"{sum(s.failures.values()):,} failed checks or rejected rows",
    )
    yield _latency(s)


def _latency(s: Summary) -> str:
    p50, p95 = percentile(s.seconds, 50), percentile(s.seconds, 95)
    if p50 is None:
        return _section(
            "latency", "Ingest to result", charts.empty("ingest to result"), "no job finished yet"
        )
    hi = _nice(max(s.seconds))
    counts, _ = charts.binned(s.seconds, 0.0, hi, 10)
    chart = charts.histogram(
        "ingest to result", counts, 0.0, hi, markers={"p50": p50, "p95": p95}, unit=" s"
    )
    return _section(
        "latency",
        "Ingest to result",
        chart,
        f"{len(s.seconds):,} jobs finished: p50 {p50:.2f} s, p95 {p95:.2f} s",
    )


def _nice(value: float) -> float:
    """A round upper bound for an axis: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _ordered(counter: Counter, known: tuple[str, ...]) -> list[str]:
    return [k for k in known if counter[k]] + sorted(
        k for k in counter if k not in known and counter[k]
    )


def _top(counter: Counter) -> list[tuple[str, int]]:
    top = counter.most_common(TOP_REASONS)
    rest = sum(counter.values()) - sum(n for _, n in top)
    return top + ([("(others)", rest)] if rest else [])


def _section(key: str, heading: str, chart: str, note: str = "") -> str:
    caption = f'<p class="note">{escape(note)}</p>' if note else ""
    return (
        f'<section class="chart-section" id="{escape(key)}"><h2>{escape(heading)}</h2>'
        f"{chart}{caption}</section>"
    )


def _table(s: Summary, batch: str | None) -> Iterator[str]:
    services = [v for v in MODERATION if v in s.vendors]
    shown = len(s.rows)
    where = f" --batch {shlex.quote(batch)}" if batch is not None else ""
    note = f"{shown:,} jobs"
    if shown < s.total:
        note = (
            f"The first {shown:,} of {s.total:,} jobs, in ingestion order; the charts count all "
            f"of them. Every job: voxqueue report{where} --format csv"
        )
    yield f'<h2>Jobs</h2><p class="note" id="table-note">{escape(note)}</p>'
    heads = [
        "id",
        "status",
        "verdict",
        *(label for label, _, _ in SCORES),
        *services,
        "seconds",
        "error",
    ]
    numeric = {label for label, _, _ in SCORES} | {"seconds"}
    yield (
        '<table id="jobs"><thead><tr>'
        + "".join(
            f'<th data-type="{"number" if h in numeric else "text"}">{escape(h)}</th>'
            for h in heads
        )
        + "</tr></thead><tbody>"
    )
    for row, seconds in s.rows:
        soe = row["soe"] or {}
        cells = [
            _cell(row["id"]),
            _cell(row["status"], row["status"]),
            _cell(row["verdict"], row["verdict"]),
        ]
        cells += [_number(soe.get(name)) for _, name, _ in SCORES]
        for service in services:
            check = row["moderation"].get(service)
            value = None if check is None else check["verdict"] or check["status"]
            cells.append(_cell(value, value))
        cells += [_number(seconds), _cell(_error(row), css="error")]
        yield "<tr>" + "".join(cells) + "</tr>"
    yield "</tbody></table>"


def _error(row: dict[str, Any]) -> str | None:
    if row["error"]:
        return row["error"]
    errors = [c["error"] for c in [row["soe"] or {}, *row["moderation"].values()] if c.get("error")]
    return "; ".join(errors) or None


def _cell(value: Any, css: str | None = None) -> str:
    cls = f' class="{escape(str(css))}"' if css else ""
    return f"<td{cls}>{escape('' if value is None else str(value))}</td>"


def _number(value: float | None) -> str:
    if value is None:
        return '<td data-sort=""></td>'
    return f'<td class="num" data-sort="{value!r}">{value:.2f}</td>'


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:0 0 6px}
.lead{color:#444;margin:0 0 16px}.note{color:#666;font-size:12px;margin:4px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:16px}
.chart-section{border:1px solid #ddd;border-radius:6px;padding:10px}
svg.chart{max-width:100%;height:auto;font-size:11px}svg text{fill:#333}
svg .axis{stroke:#999}svg .empty{fill:#888}
table{border-collapse:collapse;margin-top:8px;font-size:12px}
th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;white-space:nowrap}
th{cursor:pointer;background:#f6f6f6;position:sticky;top:0}th[aria-sort]::after{content:" \\2195"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.error{white-space:normal;max-width:40em;color:#a33}
.done,.PASS{color:#2e7d32}.REJECT{color:#c62828}.failed{color:#8e3b8e}
.REVIEW{color:#9a6b00}.rejected{color:#795548}
"""

# Sorts the table by the column clicked (again: the other way), numbers by data-sort, empty
# cells last; ``#sort=seconds`` (``#sort=-seconds``: descending) in the URL sorts on opening.
SCRIPT = """
var heads = document.querySelectorAll('#jobs th');
heads.forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = document.querySelector('#jobs tbody'), up = th.dataset.dir !== 'up';
    var num = th.dataset.type === 'number', rows = Array.from(body.rows);
    function key(r) { var c = r.cells[col]; return num ? c.dataset.sort : c.textContent; }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (num && (x === '' || y === '')) return (x === '') - (y === '');
      if (num) { x = +x; y = +y; }
      return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
    });
    heads.forEach(function (h) { h.removeAttribute('aria-sort'); delete h.dataset.dir; });
    th.dataset.dir = up ? 'up' : 'down';
    th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
document.getElementById('jobs').dataset.sortable = 'yes';
var want = decodeURIComponent(location.hash.slice(1)).match(/^sort=(-?)(.+)$/);
heads.forEach(function (th) {
  if (want && th.textContent === want[2]) { th.click(); if (want[1]) th.click(); }
});
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
# The page may fetch nothing: no default source, only its own style, data: images and this script.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"script-src 'sha256-{_SCRIPT_HASH}'"
)
