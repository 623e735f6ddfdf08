"""Ingestion: every row recorded once, invalid rows rejected with a reason (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Batch, Check, Job
from models.db import session_scope
from tasks.ingest import ingest
from tasks.manifest import Defaults, ManifestError


def write_wav(path: Path, seconds: float = 0.2, rate: int = 16000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(rate * seconds) * channels * (width // 2 or 1))
    return path


def jobs(batch: str) -> list[Job]:
    with session_scope() as session:
        query = select(Job).join(Batch).where(Batch.name == batch).order_by(Job.seq)
        return list(session.scalars(query))


@pytest.fixture
def manifest_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    write_wav(folder / "a.wav")
    write_wav(folder / "b.wav", seconds=0.5)
    write_wav(folder / "stereo.wav", channels=2)
    write_wav(folder / "8k.wav", rate=8000)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "noise.wav").write_bytes(b"this is not audio at all")
    return folder


def test_csv_rows_are_recorded_in_order_with_rejections(database_url, manifest_dir):
    (manifest_dir / "batch1.csv").write_text(
        "id,audio,ref_text,services\n"
        "one,a.wav,hello world,soe\n"
        "two,b.wav,good morning,\n"
        ",a.wav,no id,soe\n"
        "three,missing.wav,text,soe\n"
        "four,a.wav,,soe\n"
        "one,b.wav,duplicate,soe\n"
        "five,stereo.wav,text,soe\n"
        "six,8k.wav,text,soe\n"
        "seven,empty.wav,text,soe\n"
        "eight,noise.wav,text,soe\n"
        "nine,http//broken url,text,soe\n"
        "ten,a.wav,text,soe;gme\n",
        encoding="utf-8",
    )
    result = ingest(manifest_dir / "batch1.csv")

    assert result.batch == "batch1"
    assert (result.accepted, result.rejected) == (4, 8)
    recorded = jobs("batch1")
    assert [j.external_id for j in recorded] == [
        "one", "two", None, "three", "four", "one", "five", "six", "seven", "eight", "nine", "ten",
    ]
    reasons = {j.seq: j.error for j in recorded}
    assert [j.status for j in recorded[:2]] == ["pending", "pending"]
    assert [j.status for j in recorded[6:8]] == ["pending", "pending"]  # stereo, 8 kHz: converted for SOE
    assert reasons[3] == "row has no id"
    assert "not found" in reasons[4]
    assert "soe needs ref_text" in reasons[5]
    assert "duplicate id 'one'" in reasons[6]
    assert reasons[7] is None and reasons[8] is None
    assert "empty" in reasons[9]
    assert "not a readable WAV" in reasons[10]
    assert "not found" in reasons[11] or "malformed" in reasons[11]
    assert "unknown service" in reasons[12]
    assert all(j.status == "rejected" for j in recorded[2:6] + recorded[8:])
    assert recorded[0].options["ref_text"] == "hello world"


def test_reingesting_adds_nothing(database_url, manifest_dir):
    manifest = manifest_dir / "again.jsonl"
    rows = [{"id": f"r{i}", "audio": "a.wav", "ref_text": "red"} for i in range(7)] + [{"audio": "a.wav"}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")

    first = ingest(manifest)
    second = ingest(manifest)

    assert (first.accepted, first.rejected) == (7, 1)
    assert (second.accepted, second.rejected, second.existing) == (0, 0, 8)
    assert len(first.to_enqueue) == 7 and second.to_enqueue == []
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 8
        assert session.scalar(select(func.count()).select_from(Check)) == 7


def test_folder_with_sidecar_reference_texts(database_url, samples, tmp_path):
    folder = tmp_path / "samples"
    shutil.copytree(samples, folder)
    result = ingest(folder, batch="folder")
    assert result.accepted == len(list(samples.glob("*.wav")))
    recorded = jobs("folder")
    assert recorded[0].options["ref_text"] == (samples / "sample01.txt").read_text().strip()
    assert all(j.services == ["soe"] for j in recorded)


def test_defaults_from_the_command_line(database_url, manifest_dir):
    (manifest_dir / "d.csv").write_text("id,audio\nx,a.wav\n", encoding="utf-8")
    ingest(manifest_dir / "d.csv", defaults=Defaults(ref_text="red", lang="zh", services=["soe"]))
    (job,) = jobs("d")
    assert job.options["ref_text"] == "red" and job.options["lang"] == "zh"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.txt", b"id,audio\n", "must be .csv or .jsonl"),
        ("m.csv", b"id,audio\nx,\xff\xfe.wav\n", "not UTF-8"),
        ("m.csv", b"name,audio\nx,a.wav\n", "'id' column"),
    ],
)
def test_unreadable_manifests_are_refused_whole(database_url, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=message):
        ingest(path)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize("rows, writes", [(1_300, [50, 100, 200, 400, 500, 50]), (750, [50, 100, 200, 400]),
                                          (3, [3])])
def test_only_the_last_write_ends_the_batch(database_url, manifest_dir, rows, writes):
    manifest = manifest_dir / "many.csv"
    manifest.write_text("id,audio,ref_text\n" + "".join(f"r{i},a.wav,red\n" for i in range(rows)), encoding="utf-8")
    sent: list[tuple[int, bool]] = []

    result = ingest(manifest, enqueue=lambda pairs, more_follow: sent.append((len(pairs), more_follow)))

    assert sent == [(n, i < len(writes) - 1) for i, n in enumerate(writes)]  # a 750-row file ends on a full write
    assert result.accepted == rows
