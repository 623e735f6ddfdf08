"""Tencent Cloud Smart Oral Evaluation (SOE), API version 2018-07-24.

Request field names follow the official SDK's request models
(``tencentcloud.soe.v20180724.models``).  The ``build_*_params`` methods are
pure, so requests can be checked without a server; the action methods send them
through :meth:`TencentApiClient.call` and parse the ``Response`` object.
"""

from __future__ import annotations

import base64
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from vendors import http
from vendors.errors import BadResponse, InvalidInput
from vendors.soe_errors import SOE_ERRORS
from vendors.tc3 import Credentials
from vendors.tencent import ErrorTable, TencentApiClient

VENDOR = "soe"
VERSION = "2018-07-24"
ENDPOINT = "https://soe.tencentcloudapi.com"
MAX_SEQ_ID = 3000

EVAL_MODES = {"word": 0, "sentence": 1, "paragraph": 2, "free": 3}
SERVER_TYPES = {"en": 0, "zh": 1}
VOICE_FILE_TYPES = {".pcm": 1, ".raw": 1, ".wav": 2, ".mp3": 3, ".spx": 4, ".speex": 4}
SIXTEEN_BIT_TYPES = (1, 2)  # raw PCM and WAV carry 16-bit samples: chunks must be even


def voice_file_type_for(path_or_url: str) -> int:
    """``VoiceFileType`` for a file name or URL: 1 raw/pcm, 2 wav, 3 mp3, 4 speex; else 2."""
    path = urlsplit(path_or_url).path if "://" in path_or_url else path_or_url
    return VOICE_FILE_TYPES.get(posixpath.splitext(path)[1].lower(), 2)


def _code_for(table: dict[str, int], value: str | int, reason: str) -> int:
    """A manifest name (``"word"``, ``"zh"``) or a number as the vendor's integer code."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key.isdigit():
        return int(key)
    if key not in table:
        raise InvalidInput(VENDOR, reason, f"{reason.replace('_', ' ')}: {value!r}")
    return table[key]


@dataclass(frozen=True)
class SoeParams:
    """The evaluation settings shared by every request of one session."""

    ref_text: str
    eval_mode: int = 1
    score_coeff: float = 1.0
    server_type: int = 0
    voice_file_type: int = 2
    voice_encode_type: int = 1
    text_mode: int = 0
    sentence_info_enabled: int = 0
    is_async: int = 0

    @classmethod
    def from_manifest(
        cls, ref_text: str, *, mode: str | int = "sentence", lang: str | int = "en",
        audio: str | None = None, score_coeff: float = 1.0, **extra: Any,
    ) -> SoeParams:
        """``mode`` word/sentence/paragraph/free, ``lang`` en/zh, ``audio`` a path or
        URL whose extension gives ``voice_file_type``; ``extra`` sets other fields."""
        if not 1.0 <= float(score_coeff) <= 4.0:
            raise InvalidInput(VENDOR, "invalid_score_coeff", f"not in 1.0-4.0: {score_coeff!r}")
        if audio is not None:
            extra.setdefault("voice_file_type", voice_file_type_for(audio))
        return cls(
            ref_text, eval_mode=_code_for(EVAL_MODES, mode, "invalid_eval_mode"),
            server_type=_code_for(SERVER_TYPES, lang, "invalid_lang"),
            score_coeff=float(score_coeff), **extra,
        )

    def request_fields(self) -> dict[str, Any]:
        """The evaluation fields of ``InitOralProcess`` / ``TransmitOralProcessWithInit``."""
        return {
            "RefText": self.ref_text, "EvalMode": self.eval_mode, "ScoreCoeff": self.score_coeff,
            "ServerType": self.server_type, "TextMode": self.text_mode,
            "SentenceInfoEnabled": self.sentence_info_enabled, "IsAsync": self.is_async,
        }


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError) as exc:
        raise BadResponse(VENDOR, f"score is not a number: {value!r:.40}") from exc


def _object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise BadResponse(VENDOR, f"expected an object, got {type(value).__name__}")
    return value


@dataclass
class SoeResult:
    """One ``TransmitOralProcess[WithInit]`` answer, scores as the vendor sent them:
    ``-1`` accuracy means no match at all; ``-1`` fluency or completion means "not
    meaningful" (word mode, or the answer to a chunk before ``IsEnd``)."""

    session_id: str
    status: str | None
    suggested_score: float | None
    pron_accuracy: float | None
    pron_fluency: float | None
    pron_completion: float | None
    words: list[dict] = field(default_factory=list)
    sentence_info: list[dict] = field(default_factory=list)
    request_id: str | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        """``Status == "Finished"``; without a ``Status`` (older API revisions and the
        documentation's own examples), a ``SuggestedScore`` marks the final result.
        Ask it of the ``IsEnd`` chunk's answer or of a query's answer only."""
        if self.status:
            return self.status == "Finished"
        return self.suggested_score is not None

    @property
    def evaluating(self) -> bool:
        return self.status == "Evaluating"

    @property
    def failed(self) -> bool:
        return self.status == "Failed"

    @classmethod
    def from_response(cls, response: dict) -> SoeResult:
        r = _object(response)
        return cls(
            session_id=str(r.get("SessionId") or ""), status=r.get("Status") or None,
            suggested_score=_float(r.get("SuggestedScore")),
            pron_accuracy=_float(r.get("PronAccuracy")),
            pron_fluency=_float(r.get("PronFluency")),
            pron_completion=_float(r.get("PronCompletion")),
            words=list(r.get("Words") or []), sentence_info=list(r.get("SentenceInfoSet") or []),
            request_id=r.get("RequestId"), raw=r,
        )


@dataclass
class KeywordResult:
    """One ``KeywordEvaluate`` answer: one score per keyword."""

    session_id: str
    request_id: str | None
    scores: list[dict]
    raw: dict = field(default_factory=dict, repr=False)

    @staticmethod
    def _score(item: dict) -> dict:
        return {
            "keyword": item.get("Keyword"), "suggested_score": _float(item.get("SuggestedScore")),
            "pron_accuracy": _float(item.get("PronAccuracy")),
            "pron_fluency": _float(item.get("PronFluency")),
            "pron_completion": _float(item.get("PronCompletion")),
            "words": list(item.get("Words") or []),
        }

    @property
    def finished(self) -> bool:
        """KeywordEvaluate has no ``Status``: the final answer (and a query's, once the session
        is evaluated) carries one score per keyword; earlier answers carry none."""
        return bool(self.scores)

    @classmethod
    def from_response(cls, response: dict) -> KeywordResult:
        r = _object(response)
        scores = [cls._score(_object(s)) for s in r.get("KeywordScores") or []]
        return cls(str(r.get("SessionId") or ""), r.get("RequestId"), scores, r)


class SoeClient(TencentApiClient):
    """``TransmitOralProcessWithInit`` (streamed), ``InitOralProcess`` +
    ``TransmitOralProcess``, ``KeywordEvaluate``, and session queries."""

    ERRORS: ClassVar[ErrorTable] = SOE_ERRORS

    def __init__(
        self, endpoint: str, credentials: Credentials, *, region: str = "",
        app_id: str | None = None, timeout: float = 10.0,
        clock: Callable[[], float] = time.time, post: Callable[..., http.Response] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            endpoint, credentials, service="soe", version=VERSION, region=region,
            timeout=timeout, vendor=VENDOR, clock=clock, post=post, before_send=before_send,
        )
        self.app_id = app_id

    # -- pure request builders ----------------------------------------------
    def _session(self, session_id: str, **fields: Any) -> dict[str, Any]:
        params = {"SessionId": session_id, **fields}
        if self.app_id:
            params["SoeAppId"] = self.app_id
        return params

    @staticmethod
    def _chunk(
        seq_id: int, is_end: bool, chunk: bytes, file_type: int, encode_type: int = 1,
    ) -> dict[str, Any]:
        """``SeqId`` .. ``UserVoiceData`` of one chunk, checked before it costs a call."""
        if not 1 <= int(seq_id) <= MAX_SEQ_ID:
            raise InvalidInput(VENDOR, "invalid_seq_id", f"SeqId not in 1-{MAX_SEQ_ID}: {seq_id}")
        if file_type in SIXTEEN_BIT_TYPES and len(chunk) % 2:
            raise InvalidInput(VENDOR, "odd_chunk", f"chunk {seq_id} splits a 16-bit sample")
        return {
            "SeqId": int(seq_id), "IsEnd": int(bool(is_end)), "VoiceFileType": int(file_type),
            "VoiceEncodeType": int(encode_type),
            "UserVoiceData": base64.b64encode(chunk).decode("ascii"),
        }

    def build_transmit_with_init_params(
        self, session_id: str, seq_id: int, is_end: bool, chunk: bytes, params: SoeParams,
        *, work_mode: int = 0, is_query: bool = False,
    ) -> dict[str, Any]:
        audio = self._chunk(seq_id, is_end, chunk, params.voice_file_type, params.voice_encode_type)
        return self._session(
            session_id, **audio, **params.request_fields(),
            WorkMode=int(work_mode), IsQuery=int(bool(is_query)),
        )

    def build_init_params(self, session_id: str, params: SoeParams, *, work_mode: int = 1) -> dict:
        return self._session(session_id, **params.request_fields(), WorkMode=int(work_mode))

    def build_transmit_params(
        self, session_id: str, seq_id: int, is_end: bool, chunk: bytes,
        *, voice_file_type: int = 2, is_query: bool = False,
    ) -> dict[str, Any]:
        audio = self._chunk(seq_id, is_end, chunk, voice_file_type)
        return self._session(session_id, **audio, IsQuery=int(bool(is_query)))

    def build_keyword_params(
        self, session_id: str, seq_id: int, is_end: bool, chunk: bytes,
        keywords: list[str], params: SoeParams, *, is_query: bool = False,
    ) -> dict[str, Any]:
        audio = self._chunk(seq_id, is_end, chunk, params.voice_file_type, params.voice_encode_type)
        entries = [
            {"RefText": word, "EvalMode": params.eval_mode, "ScoreCoeff": params.score_coeff,
             "ServerType": params.server_type, "TextMode": params.text_mode}
            for word in keywords
        ]
        return self._session(session_id, **audio, Keywords=entries, IsQuery=int(bool(is_query)))

    # -- actions ------------------------------------------------------------
    def transmit_with_init(
        self, session_id: str, seq_id: int, is_end: bool, chunk: bytes, params: SoeParams,
        *, work_mode: int = 0, is_query: bool = False,
    ) -> SoeResult:
        body = self.build_transmit_with_init_params(
            session_id, seq_id, is_end, chunk, params, work_mode=work_mode, is_query=is_query)
        return SoeResult.from_response(self.call("TransmitOralProcessWithInit", body))

    def init_oral_process(self, session_id: str, params: SoeParams, *, work_mode: int = 1) -> str:
        """Open a session; returns the ``SessionId`` the vendor echoes."""
        body = self.build_init_params(session_id, params, work_mode=work_mode)
        return str(self.call("InitOralProcess", body).get("SessionId") or session_id)

    def transmit(
        self, session_id: str, seq_id: int, is_end: bool, chunk: bytes,
        *, voice_file_type: int = 2, work_mode: int = 1, is_query: bool = False,
    ) -> SoeResult:
        """One ``TransmitOralProcess`` chunk.  ``work_mode`` was fixed by ``InitOralProcess``
        and is no field of this action: it is accepted for symmetry and not sent."""
        body = self.build_transmit_params(
            session_id, seq_id, is_end, chunk, voice_file_type=voice_file_type, is_query=is_query)
        return SoeResult.from_response(self.call("TransmitOralProcess", body))

    def keyword_evaluate(
        self, session_id: str, seq_id: int, is_end: bool, chunk: bytes,
        keywords: list[str], params: SoeParams, *, is_query: bool = False,
    ) -> KeywordResult:
        body = self.build_keyword_params(
            session_id, seq_id, is_end, chunk, keywords, params, is_query=is_query)
        return KeywordResult.from_response(self.call("KeywordEvaluate", body))

    def query(
        self, session_id: str, params: SoeParams, *, work_mode: int = 0,
        keywords: list[str] | None = None,
    ) -> SoeResult | KeywordResult:
        """The session's result so far: ``IsQuery=1`` and no audio, with the session's own
        action. A keyword session is asked with ``KeywordEvaluate`` (its ``KeywordScores``);
        an oral one with ``TransmitOralProcessWithInit``, as the docs ask for async mode.
        Asked with the other action, the vendor does not find the session."""
        if keywords:
            return self.keyword_evaluate(session_id, 1, True, b"", keywords, params, is_query=True)
        return self.transmit_with_init(
            session_id, 1, True, b"", params, work_mode=work_mode, is_query=True)
