"""Callback delivery shared by the moderation vendors: signing switch, retries, reset, media,
settings from the environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.core import SandboxConfig
from sandbox.server import SandboxThread, config_from_env
from tests.sandbox.moderation_helpers import (
    Received,
    Receiver,
    callbacks_once,
    moderation_config,
    private_pem,
    public_pem,
    stream_with,
)
from vendors import gme, tupu
from vendors.gme import GmeClient, GmeTask
from vendors.tupu import TupuClient, TupuSigner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(credentials, tmp_path):
    return moderation_config(credentials, media_dir=str(tmp_path))


def configure(http, sandbox, **settings) -> dict:
    return http.post(sandbox.url + "/_sandbox/config", json=settings).json()


def gme_receiver(key: str) -> Receiver:
    """A receiver that refuses a GME callback whose ``Signatue`` does not verify."""

    def respond(r: Received) -> tuple[int, bytes]:
        return (
            (200, b"") if gme.verify_callback(r.body, r.query.get("Signatue"), key) else (401, b"")
        )

    return Receiver(respond)


def tupu_receiver() -> Receiver:
    def respond(r: Received) -> tuple[int, bytes]:
        try:
            tupu.verify_signed(json.loads(r.body), public_pem("server"))
        except tupu.SignatureError:
            return 401, b""
        return 200, b""

    return Receiver(respond)


def scan(sandbox, config, credentials, callback: str) -> None:
    client = GmeClient(sandbox.url, credentials, biz_id=config.gme_biz_id, timeout=5)
    client.scan_voice([GmeTask("d", "rtmp://live/1")], live=True, callback=callback)


def submit_stream(sandbox, config, callback: str) -> None:
    signer = TupuSigner(config.tupu_secret_id, private_pem("client"))
    client = TupuClient(sandbox.url, signer, public_key_pem=public_pem("server"), timeout=5)
    client.submit_stream("f", stream_with("REJECT"), callback_url=callback)


@pytest.mark.parametrize("mode", ["forged", "corrupt"])
def test_spoiled_gme_callbacks_are_refused_by_a_verifying_receiver(
    sandbox, config, credentials, http, mode
):
    assert configure(http, sandbox, callback_signing=mode)["config"]["callback_signing"] == mode
    with gme_receiver(config.gme_callback_key) as receiver:
        scan(sandbox, config, credentials, receiver.url)
        calls = receiver.wait(3)
        counts = callbacks_once(sandbox, "gme", "gave_up")
    assert (counts["delivered"], counts["failed_attempts"]) == (0, 3)
    assert (b"sandbox_tampered" in calls[0].body) is (mode == "corrupt")
    assert json.loads(calls[0].body)["DataId"] == "d"  # still a readable DescribeScanResult


@pytest.mark.parametrize("mode", ["forged", "corrupt"])
def test_spoiled_tupu_callbacks_are_refused_by_a_verifying_receiver(sandbox, config, http, mode):
    configure(http, sandbox, callback_signing=mode)
    with tupu_receiver() as receiver:
        submit_stream(sandbox, config, receiver.url)
        receiver.wait(3)
        counts = callbacks_once(sandbox, "tupu", "gave_up")
    assert (counts["delivered"], counts["failed_attempts"]) == (0, 3)


def test_valid_signing_is_the_default_and_can_be_restored(sandbox, config, credentials, http):
    configure(http, sandbox, callback_signing="forged")
    configure(http, sandbox, callback_signing="valid")
    with gme_receiver(config.gme_callback_key) as receiver, tupu_receiver() as tupu_in:
        scan(sandbox, config, credentials, receiver.url)
        submit_stream(sandbox, config, tupu_in.url)
        receiver.wait(1), tupu_in.wait(1)
        callbacks_once(sandbox, "tupu", "delivered")
    assert callbacks_once(sandbox, "gme", "delivered")["failed_attempts"] == 0


def test_a_bad_signing_mode_is_refused(http, sandbox):
    response = http.post(sandbox.url + "/_sandbox/config", json={"callback_signing": "maybe"})
    assert response.status_code == 400
    assert (
        http.get(sandbox.url + "/_sandbox/config").json()["config"]["callback_signing"] == "valid"
    )
    with pytest.raises(ValueError):
        SandboxConfig(callback_signing="maybe")


def test_an_unreachable_receiver_is_retried_then_given_up(sandbox, config, credentials):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    scan(sandbox, config, credentials, f"http://127.0.0.1:{closed_port}/cb")
    assert callbacks_once(sandbox, "gme", "gave_up") == {
        "delivered": 0, "failed_attempts": 3, "gave_up": 1,
    }  # fmt: skip


def test_reset_cancels_pending_results_and_callbacks(sandbox, config, credentials, http):
    configure(http, sandbox, result_delay_s=0.8)
    with Receiver() as receiver:
        scan(sandbox, config, credentials, receiver.url)
        http.post(sandbox.url + "/_sandbox/reset")
        time.sleep(1.0)
        assert receiver.received == []
    stats = sandbox.stats()
    assert stats["services"]["gme"] == {"tasks": {}} and stats["callbacks"] == {}
    assert stats["accepted"] == {} and stats["duplicates"] == {}


def test_stopping_with_pending_work_is_prompt(config, credentials):
    config.result_delay_s = 30
    with Receiver() as receiver:
        sandbox = SandboxThread(config)
        sandbox.start()
        scan(sandbox, config, credentials, receiver.url)
        submit_stream(sandbox, config, receiver.url)
        start = time.monotonic()
        sandbox.stop()
    assert time.monotonic() - start < 2


# -- the media route -----------------------------------------------------------------
def test_media_is_served_without_faults_or_counting(sandbox, http, tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF....")
    configure(http, sandbox, faults=[{"kind": "error5xx"}], latency_ms=1000)
    start = time.monotonic()
    assert http.get(sandbox.url + "/media/a.wav").content == b"RIFF...."
    assert time.monotonic() - start < 1.0
    assert http.get(sandbox.url + "/media/missing.wav").status_code == 404
    assert http.get(sandbox.url + "/media/%2E%2E/conftest.py").status_code >= 400
    assert sandbox.stats()["requests"] == {}


def test_no_media_dir_no_media_route(credentials, http):
    with SandboxThread(moderation_config(credentials)) as sandbox:
        assert http.get(sandbox.url + "/media/a.wav").status_code >= 400  # 405: POST only


def test_server_serves_media_from_the_command_line(tmp_path, http):
    (tmp_path / "x.mp3").write_bytes(b"ID3")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.server", "--port", "0", "--media", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        assert http.get(url + "/media/x.mp3").content == b"ID3"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0


# -- settings from the environment ---------------------------------------------------
def test_config_from_env_reads_the_moderation_settings(tmp_path):
    (tmp_path / "client.pem").write_bytes(private_pem("client"))
    (tmp_path / "server.pem").write_bytes(private_pem("server"))
    env = {
        "VOXQUEUE_TENCENT_SECRET_ID": "AKIDx", "VOXQUEUE_TENCENT_SECRET_KEY": "k",
        "VOXQUEUE_SHUMEI_ACCESS_KEY": "shumei-ak", "VOXQUEUE_GME_BIZ_ID": "1400000001",
        "VOXQUEUE_GME_CALLBACK_KEY": "gme-cb-key", "VOXQUEUE_ASR_APPID": "125",
        "VOXQUEUE_TUPU_SECRET_ID": "tid", "VOXQUEUE_TUPU_PRIVATE_KEY": str(tmp_path / "client.pem"),
        "VOXQUEUE_SANDBOX_TUPU_SERVER_PRIVATE_KEY": str(tmp_path / "server.pem"),
        "VOXQUEUE_SANDBOX_RESULT_DELAY_S": "1.5", "VOXQUEUE_SANDBOX_MEDIA_DIR": str(tmp_path),
    }  # fmt: skip
    config = config_from_env(env)
    assert (config.shumei_access_key, config.gme_biz_id, config.gme_callback_key) == (
        "shumei-ak", 1400000001, "gme-cb-key")  # fmt: skip
    assert (config.asr_appid, config.asr_secret_id, config.asr_secret_key) == ("125", "AKIDx", "k")
    assert config.tupu_secret_id == "tid" and config.result_delay_s == 1.5
    assert config.media_dir == str(tmp_path)
    assert config.tupu_client_public_key == public_pem("client").decode()  # derived
    assert config.tupu_server_private_key == private_pem("server").decode()
    for secret in ("shumei-ak", "gme-cb-key", "BEGIN PRIVATE"):
        assert secret not in repr(config)


def test_an_explicit_client_public_key_wins(tmp_path):
    (tmp_path / "client.pem").write_bytes(private_pem("client"))
    (tmp_path / "other.pub").write_bytes(public_pem("other"))
    config = config_from_env({
        "VOXQUEUE_TUPU_PRIVATE_KEY": str(tmp_path / "client.pem"),
        "VOXQUEUE_SANDBOX_TUPU_CLIENT_PUBLIC_KEY": str(tmp_path / "other.pub"),
    })  # fmt: skip
    assert config.tupu_client_public_key == public_pem("other").decode()
