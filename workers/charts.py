"""Charts as inline SVG: pure functions from counts to an SVG string.

Every text is escaped with :func:`html.escape`; nothing refers to anything outside the string
(no ``xmlns``, fonts, images or links), so a page holding them fetches nothing. Each bar is a
``<g class="bar" data-label=… data-value=…>`` so that a test or a script can read the numbers
back from the DOM.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape

WIDTH = 520
ROW = 22  # height of a horizontal bar's row
LABEL_W = 170  # room for the labels of horizontal bars
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
COLORS = {
    "done": "#59a14f",
    "PASS": "#59a14f",
    "failed": "#b07aa1",
    "REJECT": "#e15759",
    "REVIEW": "#edc948",
    "rejected": "#9c755f",
    "pending": "#bab0ac",
    "running": "#4e79a7",
    "closing": "#76b7b2",
    "no verdict": "#bab0ac",
}


def color(key: str, index: int = 0) -> str:
    return COLORS.get(key, PALETTE[index % len(PALETTE)])


def short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(name: str, height: int, body: Iterable[str]) -> str:
    label = escape(name)
    return (
        f'<svg class="chart" data-chart="{label}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{label}">'
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def empty(name: str, note: str = "nothing to show") -> str:
    """A chart with no data still answers, so every section holds one."""
    text = f'<text class="empty" x="{WIDTH // 2}" y="24" text-anchor="middle">{escape(note)}</text>'
    return _svg(name, 40, [text])


def bars(name: str, items: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars, one per (label, count), in the order given."""
    if not any(n for _, n in items):
        return empty(name)
    top = max(n for _, n in items)
    span = WIDTH - LABEL_W - 60
    body = []
    for i, (label, n) in enumerate(items):
        y = 6 + i * ROW
        w = 0 if not n else max(1.0, span * n / top)
        body.append(
            f'<g class="bar" data-label="{escape(label)}" data-value="{n}">'
            f"<title>{escape(label)}: {n}</title>"
            f'<text x="{LABEL_W - 6}" y="{y + 14}" text-anchor="end">{escape(short(label))}</text>'
            f'<rect x="{LABEL_W}" y="{y + 2}" width="{w:.1f}" height="{ROW - 6}" '
            f'fill="{color(label, i)}"/>'
            f'<text class="value" x="{LABEL_W + w + 5:.1f}" y="{y + 14}">{n}</text></g>'
        )
    return _svg(name, 12 + len(items) * ROW, body)


def stacked(name: str, rows: Sequence[tuple[str, Mapping[str, int]]], keys: Sequence[str]) -> str:
    """One horizontal bar per row, split by ``keys`` (e.g. verdicts per vendor), with a legend."""
    totals = [sum(parts.get(k, 0) for k in keys) for _, parts in rows]
    if not any(totals):
        return empty(name)
    top = max(totals)
    span = WIDTH - LABEL_W - 60
    body = [_legend(keys)]
    for i, ((label, parts), total) in enumerate(zip(rows, totals, strict=True)):
        y = 30 + i * ROW
        body.append(
            f'<g class="row" data-label="{escape(label)}" data-value="{total}">'
            f'<text x="{LABEL_W - 6}" y="{y + 14}" text-anchor="end">{escape(short(label))}</text>'
        )
        x = float(LABEL_W)
        for j, key in enumerate(keys):
            n = parts.get(key, 0)
            if not n:
                continue
            w = span * n / top
            body.append(
                f'<g class="bar" data-label="{escape(label)} {escape(key)}" data-value="{n}">'
                f"<title>{escape(label)} {escape(key)}: {n}</title>"
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{ROW - 6}" '
                f'fill="{color(key, j)}"/></g>'
            )
            x += w
        body.append(f'<text class="value" x="{x + 5:.1f}" y="{y + 14}">{total}</text></g>')
    return _svg(name, 36 + len(rows) * ROW, body)


def _legend(keys: Sequence[str]) -> str:
    parts, x = [], LABEL_W
    for j, key in enumerate(keys):
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{color(key, j)}"/>'
            f'<text x="{x + 16}" y="16">{escape(short(key, 14))}</text>'
        )
        x += 24 + 8 * min(len(key), 14)
    return f'<g class="legend">{"".join(parts)}</g>'


def binned(values: Iterable[float], lo: float, hi: float, n: int) -> tuple[list[int], int]:
    """Counts of ``values`` in ``n`` equal bins over [lo, hi] (hi in the last bin), and how many
    fell outside (e.g. SOE's -1 for a score it could not give)."""
    counts, outside = [0] * n, 0
    for v in values:
        if not lo <= v <= hi or math.isnan(v):
            outside += 1
            continue
        counts[min(n - 1, int((v - lo) / (hi - lo) * n))] += 1
    return counts, outside


def histogram(
    name: str,
    counts: Sequence[int],
    lo: float,
    hi: float,
    *,
    markers: Mapping[str, float] | None = None,
    unit: str = "",
) -> str:
    """Vertical bars over equal bins of [lo, hi], with optional vertical markers (p50, p95)."""
    if not any(counts):
        return empty(name)
    left, bottom, height = 40, 176, 130  # the band above the bars holds the markers' labels
    span = WIDTH - left - 20
    step = span / len(counts)
    top = max(counts)
    body = [f'<line class="axis" x1="{left}" y1="{bottom}" x2="{left + span}" y2="{bottom}"/>']
    for i, n in enumerate(counts):
        a, b = lo + (hi - lo) * i / len(counts), lo + (hi - lo) * (i + 1) / len(counts)
        h = height * n / top
        x = left + i * step
        label = f"{_num(a)}–{_num(b)}{unit}"
        body.append(
            f'<g class="bar" data-label="{escape(label)}" data-value="{n}">'
            f"<title>{escape(label)}: {n}</title>"
            f'<rect x="{x + 1:.1f}" y="{bottom - h:.1f}" width="{step - 2:.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"/>'
            + (
                f'<text class="value" x="{x + step / 2:.1f}" y="{bottom - h - 3:.1f}" '
                f'text-anchor="middle">{n}</text>'
                if n
                else ""
            )
            + "</g>"
        )
    for i in range(0, len(counts) + 1, max(1, len(counts) // 5)):
        x = left + i * step
        body.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">'
            f"{escape(_num(lo + (hi - lo) * i / len(counts)) + unit)}</text>"
        )
    for j, (mark, value) in enumerate((markers or {}).items()):
        x = left + span * (min(max(value, lo), hi) - lo) / (hi - lo)
        anchor = "end" if j % 2 == 0 else "start"  # p50 to the left of its line, p95 to the right
        body.append(
            f'<g class="marker" data-label="{escape(mark)}" data-value="{value:.3f}">'
            f'<line x1="{x:.1f}" y1="{bottom - height - 30}" x2="{x:.1f}" y2="{bottom}" '
            f'stroke="#333" stroke-dasharray="4 3"/>'
            f'<text x="{x + (3 if j % 2 else -3):.1f}" y="{bottom - height - 32}" '
            f'text-anchor="{anchor}">{escape(mark)} {escape(_num(value) + unit)}</text></g>'
        )
    return _svg(name, bottom + 22, body)


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"
