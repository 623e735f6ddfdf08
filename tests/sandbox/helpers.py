"""Helpers for the sandbox tests: a signed API 3.0 caller and fake audio."""

from __future__ import annotations

import base64
import io
import json
import random
import time
import uuid
import wave
from dataclasses import dataclass
from typing import Any

import requests

from vendors.tc3 import Credentials, TC3Signer

SOE_VERSION = "2018-07-24"


@dataclass
class TencentCaller:
    """Signs API 3.0 calls with our signer and posts them to the sandbox."""

    url: str
    credentials: Credentials
    http: requests.Session
    service: str = "soe"

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def post(
        self,
        action: str,
        params: dict[str, Any],
        *,
        body: bytes | None = None,
        timestamp: int | None = None,
        path: str = "/",
        **overrides: str,
    ) -> requests.Response:
        payload = json.dumps(params).encode()
        signer = TC3Signer(self.credentials, self.service)
        headers = signer.headers(
            host=self.host,
            action=action,
            version=SOE_VERSION,
            payload=payload,
            timestamp=timestamp or int(time.time()),
            uri=path,
        )
        headers.update(overrides)
        return self.http.post(
            self.url + path, data=payload if body is None else body, headers=headers, timeout=10
        )

    def call(self, action: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        response = self.post(action, params, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["Response"]


def error_code(response: dict[str, Any]) -> str | None:
    return response.get("Error", {}).get("Code")


def pcm(n_bytes: int, seed: int = 0) -> bytes:
    """Deterministic fake 16-bit PCM."""
    return random.Random(seed).randbytes(n_bytes)


def wav(n_frames: int, seed: int = 0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm(n_frames * 2, seed))
    return out.getvalue()


def chunk_params(
    session_id: str,
    seq_id: int,
    data: bytes,
    *,
    is_end: bool = False,
    ref_text: str = "the quick brown fox",
    voice_file_type: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """TransmitOralProcessWithInit parameters for one chunk."""
    return {
        "SeqId": seq_id,
        "IsEnd": int(is_end),
        "VoiceFileType": voice_file_type,
        "VoiceEncodeType": 1,
        "UserVoiceData": base64.b64encode(data).decode(),
        "SessionId": session_id,
        "RefText": ref_text,
        "WorkMode": 0,
        "EvalMode": 1,
        "ScoreCoeff": 1.0,
        "ServerType": 0,
        **extra,
    }


def chunks(audio: bytes, size: int) -> list[bytes]:
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def new_session_id() -> str:
    return str(uuid.uuid4())


def transmit_all(
    caller: TencentCaller, session_id: str, audio: bytes, size: int, **params: Any
) -> list[dict[str, Any]]:
    """The seed's chunked loop with our signer; returns every response."""
    parts = chunks(audio, size)
    return [
        caller.call(
            "TransmitOralProcessWithInit",
            chunk_params(session_id, i, part, is_end=i == len(parts), **params),
        )
        for i, part in enumerate(parts, start=1)
    ]


SCORE_FIELDS = ("SuggestedScore", "PronAccuracy", "PronFluency", "PronCompletion", "Words")


def score_fields(response: dict[str, Any]) -> dict[str, Any]:
    return {k: response[k] for k in SCORE_FIELDS}
