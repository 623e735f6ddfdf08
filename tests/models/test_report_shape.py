"""The CSV report's columns follow the contract's JSON shape, flattened with '.'."""

from __future__ import annotations

from models.report import flatten
from workers.reporting import CSV_COLUMNS


def test_csv_columns_flatten_the_json_report():
    assert CSV_COLUMNS[:6] == ["id", "batch", "audio", "status", "error", "verdict"]
    assert "soe.suggested_score" in CSV_COLUMNS and "soe.chunks" in CSV_COLUMNS
    for vendor in ("gme", "shumei", "tupu", "asr"):
        assert f"moderation.{vendor}.verdict" in CSV_COLUMNS
        assert f"moderation.{vendor}.labels" in CSV_COLUMNS


def test_flatten_joins_lists():
    assert flatten({"a": {"b": [1, "x"]}, "c": None}) == {"a.b": "1|x", "c": None}
