"""No configured secret anywhere the pipeline writes: logs, database, reports, command output."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from models import Base
from models.db import engine_for
from tests.e2e.test_soe_pipeline import make_manifest
from tests.moderation_env import (
    moderation_env,
    point_at_sandbox,
    start_webhooks,
    write_moderation_manifest,
)

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def pipeline_env(tmp_path) -> dict[str, str]:
    return moderation_env(tmp_path) | {"VOXQUEUE_LOG_LEVEL": "DEBUG"}


def secrets_of(env: dict[str, str]) -> dict[str, str]:
    found = {name: env[name] for name in (
        "VOXQUEUE_TENCENT_SECRET_KEY", "VOXQUEUE_SHUMEI_ACCESS_KEY", "VOXQUEUE_GME_CALLBACK_KEY")}
    pem = Path(env["VOXQUEUE_TUPU_PRIVATE_KEY"]).read_text().splitlines()
    found["tupu private key (a line of it)"] = pem[len(pem) // 2]
    return found


def database_text(url: str) -> str:
    parts = []
    with engine_for(url).connect() as conn:
        for table in Base.metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(parts)


def test_no_secret_in_logs_database_or_reports(pipeline, tmp_path, database_url):
    point_at_sandbox(pipeline)
    start_webhooks(pipeline)
    pipeline.start_beat()
    pipeline.start_worker("-c", "8")
    moderated = write_moderation_manifest(tmp_path / "media", 12, "gme,shumei,asr", streams=2)
    outputs = [pipeline.cli("ingest", str(moderated)), pipeline.cli("ingest", str(make_manifest(tmp_path / "soe", 4)))]
    outputs += [pipeline.cli("wait", "--batch", "clips", "--timeout", "90"),
                pipeline.cli("wait", "--batch", "readings", "--timeout", "90")]
    outputs += [pipeline.cli("report", "--format", fmt) for fmt in ("json", "csv")]
    outputs += [pipeline.cli("status")]
    unknown = pipeline.cli("report", "--batch", "does-not-exist", check=False)
    assert unknown.returncode == 1 and unknown.stderr.startswith("voxqueue: error: no batch named")
    outputs.append(unknown)

    written = {
        "command output": "\n".join(o.stdout + o.stderr for o in outputs),
        "database": database_text(database_url),
        **{f"log {p.name}": p.read_text(errors="replace") for p in pipeline.logs.glob("*.log")},
    }
    assert "gme" in written["database"] and '"verdict"' in written["command output"]
    leaks = [(where, name) for name, value in secrets_of(pipeline.env).items()
             for where, text in written.items() if value in text]
    print(f"\nscanned {sum(len(t) for t in written.values())} characters in {len(written)} places")
    assert leaks == []
