"""Log lines carry the job, service and vendor request id; JSON lines parse."""

from __future__ import annotations

import io
import json
import logging

from tasks.logctx import ContextFilter, TextFormatter, bound
from workers.console import JsonFormatter


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_json_lines_carry_the_bound_context():
    logger, out = capture(JsonFormatter())
    with bound(job="pupil-007", service="soe", check_id=12):
        logger.info("vendor call", extra={"vendor_request_id": "req-1", "status": 200})
    logger.info("outside")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "vendor call"
    assert (first["job"], first["service"], first["check_id"]) == ("pupil-007", "soe", 12)
    assert first["vendor_request_id"] == "req-1" and first["status"] == 200
    assert "job" not in second


def test_text_lines_append_the_context():
    logger, out = capture(TextFormatter())
    with bound(job="clip-001", service="gme"), bound(check_id=3):
        logger.info("submitted")
    assert out.getvalue().rstrip().endswith("submitted [job=clip-001 service=gme check_id=3]")
