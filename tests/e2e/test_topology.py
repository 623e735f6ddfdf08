"""The production topology of docker-compose.yml, as processes; and the file itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.soe import score
from tests.e2e.test_soe_pipeline import WORDS
from tests.moderation_env import (
    moderation_env,
    point_at_sandbox,
    start_webhooks,
    write_moderation_manifest,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pipeline_env(tmp_path) -> dict[str, str]:
    return moderation_env(tmp_path)


@pytest.mark.e2e
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_compose_topology_as_processes_finishes_a_batch(pipeline, tmp_path):
    media = tmp_path / "media"
    manifest = write_moderation_manifest(media, 12, "gme,shumei,asr", streams=2)
    with manifest.open("a", encoding="utf-8") as fh:  # and pronunciation, for the soe worker
        for i in range(4):
            fh.write(f'{{"id": "read-{i}", "audio": "clip{i:03}.wav", "ref_text": "{WORDS[0]}"}}\n')
    point_at_sandbox(pipeline)
    start_webhooks(pipeline)
    pipeline.start_beat()
    pipeline.start_worker("-Q", "soe", "-c", "4", name="worker-soe")
    pipeline.start_worker("-Q", "gme,shumei,tupu,asr", "-c", "8", name="worker-moderation")
    pipeline.start_worker("-Q", "callbacks,poll,housekeeping", "-c", "2", name="worker-poll")

    pipeline.cli("ingest", str(manifest))
    pipeline.wait("clips", 120)

    report = pipeline.report("clips")
    assert [r["status"] for r in report] == ["done"] * 18
    for row in (r for r in report if r["id"].startswith("read-")):
        audio = (media / f"clip{int(row['id'][5:]):03}.wav").read_bytes()
        assert row["soe"]["suggested_score"] == score(audio, WORDS[0], 1, 1.0)["SuggestedScore"]
    assert all(r["moderation"]["asr"]["text"] for r in report if r["id"].startswith("clip"))


def test_compose_file_is_accepted_by_docker_compose():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the docker client has no compose plugin: {probe.stderr.strip()[:200]}")
    result = subprocess.run([docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr


def test_flower_is_published_on_loopback_only():
    """Flower runs without authentication in the compose file: it must not be reachable from other hosts."""
    import re

    text = (ROOT / "docker-compose.yml").read_text()
    block = re.search(r"^  flower:\n((?:    .*\n|\s*\n)+)", text, re.MULTILINE).group(1)
    ports = re.findall(r'"([^"]*5555[^"]*)"', re.search(r"ports: \[(.*)\]", block).group(1))
    assert ports and all(p.startswith(("127.0.0.1:", "[::1]:")) for p in ports), ports
    assert "FLOWER_UNAUTHENTICATED_API" not in block
