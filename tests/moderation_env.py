"""Environment for moderation end-to-end tests: generated credentials, keys, media, webhooks."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.pipeline import Pipeline, write_speech_like_wav
from workers.processes import free_port, running, voxqueue_command, wait_http


def write_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = folder / f"{name}-private.pem"
    public = folder / f"{name}-public.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def moderation_env(tmp_path: Path, *, callbacks: bool = True, delay_s: float = 1.0) -> dict[str, str]:
    """Everything the workers and the sandbox need, generated for this test."""
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    ours_private, ours_public = write_key_pair(keys, "voxqueue")
    tupu_private, tupu_public = write_key_pair(keys, "tupu")
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    webhook_port = free_port()
    env = {
        "VOXQUEUE_SHUMEI_ACCESS_KEY": secrets.token_hex(12),
        "VOXQUEUE_GME_BIZ_ID": "1400012345",
        "VOXQUEUE_GME_CALLBACK_KEY": secrets.token_hex(16),
        "VOXQUEUE_ASR_APPID": "1250000001",
        "VOXQUEUE_TUPU_SECRET_ID": "tupu-" + secrets.token_hex(6),
        "VOXQUEUE_TUPU_PRIVATE_KEY": str(ours_private),
        "VOXQUEUE_TUPU_PUBLIC_KEY": str(tupu_public),
        "VOXQUEUE_SANDBOX_TUPU_CLIENT_PUBLIC_KEY": str(ours_public),
        "VOXQUEUE_SANDBOX_TUPU_SERVER_PRIVATE_KEY": str(tupu_private),
        "VOXQUEUE_SANDBOX_MEDIA_DIR": str(media),
        "VOXQUEUE_SANDBOX_RESULT_DELAY_S": str(delay_s),
        "VOXQUEUE_POLL_INTERVAL": "1",
        "VOXQUEUE_GME_QPS": "200", "VOXQUEUE_SHUMEI_QPS": "200", "VOXQUEUE_ASR_QPS": "200",
        "VOXQUEUE_TUPU_QPS": "200",
        "WEBHOOK_PORT": str(webhook_port),
    }
    if callbacks:
        env["VOXQUEUE_CALLBACK_BASE_URL"] = f"http://127.0.0.1:{webhook_port}"
    return env


def point_at_sandbox(pipeline: Pipeline) -> None:
    """Vendor endpoints and the media URL are the sandbox's (known once it runs)."""
    for vendor in ("GME", "SHUMEI", "TUPU", "ASR"):
        pipeline.env[f"VOXQUEUE_{vendor}_ENDPOINT"] = pipeline.sandbox_url
    pipeline.env["VOXQUEUE_MEDIA_BASE_URL"] = pipeline.sandbox_url + "/media"


def start_webhooks(pipeline: Pipeline) -> None:
    port = pipeline.env["WEBHOOK_PORT"]
    proc = pipeline.stack.enter_context(running(
        voxqueue_command("webhooks", "--port", port), pipeline.env, pipeline.logs / "webhooks.log"))
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)


def write_moderation_manifest(media: Path, count: int, services: str, *, streams: int = 0,
                              name: str = "clips") -> Path:
    """``count`` audio files for ``services`` and ``streams`` live streams for tupu."""
    manifest = media / f"{name}.jsonl"
    with manifest.open("w", encoding="utf-8") as fh:
        for i in range(count):
            write_speech_like_wav(media / f"clip{i:03}.wav", 0.1 + (i % 5) * 0.05, seed=1000 + i)
            fh.write(json.dumps({"id": f"clip-{i:03}", "audio": f"clip{i:03}.wav", "services": services,
                                 "user_id": f"user{i % 7}", "room_id": f"room{i % 3}"}) + "\n")
        for i in range(streams):
            fh.write(json.dumps({"id": f"live-{i:02}", "stream": f"rtmp://live.example.com/app/room{i}",
                                 "services": "tupu"}) + "\n")
    return manifest
