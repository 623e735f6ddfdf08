"""Tencent Smart Oral Evaluation (SOE, 2018-07-24) in the sandbox.

Actions: TransmitOralProcessWithInit, InitOralProcess, TransmitOralProcess and
KeywordEvaluate, behind the Tencent front door (:mod:`sandbox.tencent`). The chunk
rules are in :mod:`sandbox.soe_session`; scores come from :func:`score` (defined in
:mod:`sandbox.soe_score`), a pure function of the reassembled audio and the inputs,
so tests can predict them: ``from sandbox.soe import score``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.core import Sandbox, VendorService
from sandbox.soe_score import keyword_scores, score  # score is part of this module's API
from sandbox.soe_session import (
    BASE64_DECODE_FAILED,
    CANNOT_FIND_SESSION,
    NEED_INIT,
    PAST_SEQ_ID_LOSE,
    REF_TEXT_EMPTY,
    RESULT_EXPIRED,
    SERVER_OVERLOAD,
    SESSION_EXPIRED,
    SESSION_ID_IN_USE,
    Chunk,
    Session,
)
from sandbox.tencent import (
    INVALID_PARAMETER,
    INVALID_PARAMETER_VALUE,
    MISSING_PARAMETER,
    TencentError,
    mount,
)

FREE_SPEECH = 3
_KIND_NAMES = {"oral": "oral evaluation", "keyword": "keyword evaluation"}

# Codes whose SDK description says the session is gone: "请重新初始化" (initialise again),
# or not found, released or never initialised. Injected as a fault ("code"), one drops
# the session, and every later call on its SessionId hears the same code again.
SESSION_GONE_CODES = frozenset({
    "FailedOperation.ErrorGetSession", "FailedOperation.FailedInit",
    "FailedOperation.FailedSetSession", "FailedOperation.FailedSetSessionSeqID",
    "FailedOperation.NeedInitBeforeEvaluation", "FailedOperation.ResultExpired",
    "FailedOperation.SeqIdExpired", "FailedOperation.SessionExpired",
    "InternalError.CannotFindSession", "InternalError.NeedToInit",
    "InternalError.NoConversationFound", "InternalError.NoInitBeforeEvaluation",
    "InvalidParameterValue.RefTextLimitExceeded", "InvalidParameterValue.SessionIdInUse",
    "ResourceUnavailable.CannotFindSession", "ResourceUnavailable.NoConversationFound",
    "ResourceUnavailable.NoInitBeforeEvaluation",
})  # fmt: skip


# -- request parameters -------------------------------------------------------------
def _get(params: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = params.get(name)
    value = default if value is None else value
    if value is None:
        raise TencentError(
            MISSING_PARAMETER, f"The request is missing a required parameter `{name}`"
        )
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise TencentError(INVALID_PARAMETER, f"`{name}` must be {kind.__name__}") from None


def _decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise TencentError(BASE64_DECODE_FAILED, "UserVoiceData is not valid base64") from None


def _chunk(params: dict[str, Any], one_shot: bool) -> Chunk:
    chunk = Chunk(
        seq_id=1 if one_shot else _get(params, "SeqId", int, 1),
        data=_decode(_get(params, "UserVoiceData", str)),
        is_end=one_shot or _get(params, "IsEnd", int, 0) == 1,
        voice_file_type=_get(params, "VoiceFileType", int, 1),
    )
    chunk.check()
    return chunk


def _oral_params(params: dict[str, Any]) -> dict[str, Any]:
    oral = {
        "RefText": _get(params, "RefText", str, ""),
        "EvalMode": _get(params, "EvalMode", int, 0),
        "ScoreCoeff": _get(params, "ScoreCoeff", float, 1.0),
        "ServerType": _get(params, "ServerType", int, 0),
        "WorkMode": _get(params, "WorkMode", int, 0),
    }
    if not oral["RefText"].strip() and oral["EvalMode"] != FREE_SPEECH:
        raise TencentError(REF_TEXT_EMPTY, "RefText is empty")
    if not 1.0 <= oral["ScoreCoeff"] <= 4.0:
        raise TencentError(INVALID_PARAMETER_VALUE, "ScoreCoeff must be within 1.0..4.0")
    return oral


def _keyword_params(params: dict[str, Any]) -> dict[str, Any]:
    keywords = params.get("Keywords")
    if (
        not isinstance(keywords, list)
        or not keywords
        or not all(isinstance(k, dict) for k in keywords)
    ):
        raise TencentError(
            INVALID_PARAMETER_VALUE, "Keywords must be a non-empty list of Keyword objects"
        )
    return {"Keywords": [_keyword(k) for k in keywords]}


def _keyword(keyword: dict[str, Any]) -> dict[str, Any]:
    ref_text = _get(keyword, "RefText", str, "")
    if not ref_text.strip():
        raise TencentError(REF_TEXT_EMPTY, "A keyword's RefText is empty")
    return {
        "RefText": ref_text,
        "EvalMode": _get(keyword, "EvalMode", int, 0),
        "ScoreCoeff": _get(keyword, "ScoreCoeff", float, 1.0),
    }


# -- answers ------------------------------------------------------------------------
EVALUATING = {
    "PronAccuracy": -1,
    "PronFluency": -1,
    "PronCompletion": -1,
    "SuggestedScore": 0,
    "Words": [],
    "SentenceInfoSet": [],
}


def _answer(session: Session, final: bool) -> dict[str, Any]:
    """``final``: the result; else what a chunk before the end (or an unready query) gets."""
    if session.kind == "keyword":
        return {"KeywordScores": session.result if final else [], "SessionId": session.session_id}
    fields = session.result if final else EVALUATING
    status = "Finished" if final else "Evaluating"
    return {**fields, "SessionId": session.session_id, "Status": status, "AudioUrl": ""}


def _of_kind(session: Session, kind: str) -> Session:
    if session.kind != kind:
        raise TencentError(SESSION_ID_IN_USE, "SessionId belongs to another kind of evaluation")
    return session


class SoeService(VendorService):
    name = "soe"
    version = "2018-07-24"
    overload_code = SERVER_OVERLOAD

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.sessions: dict[str, Session] = {}
        self.dropped: dict[str, str] = {}  # SessionId -> the code that dropped it (a fault)
        self.actions = {
            "TransmitOralProcessWithInit": self.transmit_with_init,
            "InitOralProcess": self.init_oral_process,
            "TransmitOralProcess": self.transmit,
            "KeywordEvaluate": self.keyword_evaluate,
        }

    def add_routes(self, app: web.Application) -> None:
        mount(app, self)

    def reset(self) -> None:
        self.sessions.clear()
        self.dropped.clear()

    def snapshot(self) -> dict[str, Any]:
        sessions = {sid: s.snapshot() for sid, s in self.sessions.items()}
        return {"sessions": sessions, "dropped": dict(self.dropped)}

    def on_fault_code(self, code: str, params: dict[str, Any]) -> None:
        """A "code" fault that means the session is gone drops it, as the vendor would have."""
        sid = params.get("SessionId")
        if code in SESSION_GONE_CODES and isinstance(sid, str):
            self.sessions.pop(sid, None)
            self.dropped[sid] = code

    # -- actions --------------------------------------------------------------------
    def transmit_with_init(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._evaluate(params, "oral", lambda sid: self._new_oral(sid, params))

    def keyword_evaluate(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._evaluate(params, "keyword", lambda sid: self._new_keyword(sid, params))

    def transmit(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._evaluate(params, "oral", None)

    def init_oral_process(self, params: dict[str, Any]) -> dict[str, Any]:
        sid = _get(params, "SessionId", str)
        session = self._new_oral(sid, params)
        existing = self._live(sid)
        if existing is None:
            self.sessions[sid] = session
        elif existing.params != session.params:
            raise TencentError(
                SESSION_ID_IN_USE, "SessionId is already initialised with other parameters"
            )
        return {"SessionId": sid}

    # -- the shared chunk flow ------------------------------------------------------
    def _evaluate(
        self, params: dict[str, Any], kind: str, create: Callable[[str], Session] | None
    ) -> dict[str, Any]:
        sid = _get(params, "SessionId", str)
        if _get(params, "IsQuery", int, 0) == 1:
            return self._query(sid, kind)
        session = self._live(sid)
        one_shot = session.one_shot if session else _get(params, "WorkMode", int, 0) == 1
        chunk = _chunk(params, one_shot)
        session = _of_kind(session or self._start(sid, chunk.seq_id, create), kind)
        if session.accept(chunk):
            self._finish(session)
        self.sessions[sid] = session  # a new session is kept once its first chunk is accepted
        return _answer(session, session.answers_final(chunk.seq_id))

    def _live(self, sid: str, query: bool = False) -> Session | None:
        """The session, or None. An expired one is forgotten and answers SessionExpired
        (ResultExpired to a query of a finished one), so the SessionId can start over."""
        if sid in self.dropped:
            raise TencentError(self.dropped[sid], "The session is gone; start a new session")
        session = self.sessions.get(sid)
        if session is not None and session.expired(self.config.soe_session_ttl_s):
            del self.sessions[sid]
            code = RESULT_EXPIRED if query and session.finished else SESSION_EXPIRED
            raise TencentError(code, "The session has expired; start a new session")
        return session

    def _start(self, sid: str, seq_id: int, create: Callable[[str], Session] | None) -> Session:
        if create is None:
            raise TencentError(NEED_INIT, "The session does not exist; call InitOralProcess first")
        if seq_id > 1:
            raise TencentError(PAST_SEQ_ID_LOSE, "The session does not exist: resend from SeqId 1")
        return create(sid)

    def _new_oral(self, sid: str, params: dict[str, Any]) -> Session:
        oral = _oral_params(params)
        return Session(
            sid, "oral", oral, one_shot=oral["WorkMode"] == 1,
            is_async=_get(params, "IsAsync", int, 0) == 1, limit_s=self._limit(oral["EvalMode"]),
        )

    def _new_keyword(self, sid: str, params: dict[str, Any]) -> Session:
        keywords = _keyword_params(params)
        longest = max(self._limit(k["EvalMode"]) or 0.0 for k in keywords["Keywords"])
        return Session(sid, "keyword", keywords, limit_s=longest or None)

    def _limit(self, eval_mode: int) -> float | None:
        return self.config.soe_audio_limits_s.get(str(eval_mode))

    def _finish(self, session: Session) -> None:
        audio = session.take_audio()
        p = session.params
        if session.kind == "keyword":
            result = keyword_scores(audio, p["Keywords"])
        else:
            result = score(audio, p["RefText"], p["EvalMode"], p["ScoreCoeff"])
        session.finish(result, self.config.result_delay_s)
        self.stats.accept(self.name, session.session_id)

    def _query(self, sid: str, kind: str) -> dict[str, Any]:
        """IsQuery with the session's own action; asked with another, the session is not found
        (a keyword session has no oral result, and the reverse)."""
        session = self._live(sid, query=True)
        if session is None or session.kind != kind:
            raise TencentError(CANNOT_FIND_SESSION, f"No {_KIND_NAMES[kind]} session has this SessionId")
        session.queries += 1
        return _answer(session, session.ready)
