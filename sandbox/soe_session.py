"""SOE session state and the chunk rules (moto's ``models.py`` for SOE).

Rules for a chunk ``SeqId`` of a session whose last received chunk is ``last``:

- ``SeqId == last + 1``: appended (``IsEnd=1`` finishes the session and scores it).
- ``SeqId <= last`` with the same bytes: an idempotent replay; nothing changes and the
  answer is what that chunk got the first time (the final result for the IsEnd chunk).
  A replay of the last chunk with ``IsEnd=1`` finishes a session that was not finished.
- ``SeqId <= last`` with different bytes: ``FailedOperation.SeqIdExpired`` (that SeqId is
  used up; start a new session), or ``FailedOperation.SessionExpired`` once finished.
- ``SeqId > last + 1``, or an unknown session with ``SeqId > 1``:
  ``FailedOperation.PastSeqIdLose`` (resend from ``last + 1``).
- A new chunk for a finished session: ``FailedOperation.SessionExpired``.
- Input checked on every chunk: SeqId 1..3000 (``InvalidParameterValue.InvalidSeqId``,
  ``InvalidParameter.SeqIdLimitExceeded``); whole 16-bit samples for PCM and WAV
  (``InvalidParameterValue.AudioSizeMustBeEven``; mp3/speex frames are not checked);
  3 MB of audio in one request (``InvalidParameterValue.VoiceLengthTooLong``); a
  RIFF/WAVE header of 16 kHz mono 16-bit PCM on the first WAV chunk
  (``InternalError.InvalidWAVHeader``: SOE takes no other rate or channel count); PCM
  and WAV audio no longer than the mode takes (``InvalidParameterValue.AudioLimitExceeded``).
- A rejected chunk changes nothing; a new session is kept only once its first chunk
  is accepted. WorkMode 1 (one-shot) treats every chunk as SeqId 1 with IsEnd 1.
- Time: a session whose next chunk does not come within the TTL expires
  (``SessionExpired``); a finished one keeps its result for IsQuery as long
  (``ResultExpired`` after). An async session (IsAsync 1) answers no score to any
  chunk; IsQuery answers ``Evaluating`` until its result is ready.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.tencent import TencentError

MAX_SEQ_ID = 3000
MAX_REQUEST_AUDIO_BYTES = 3 * 1024 * 1024
BYTES_PER_SECOND = 32000  # 16 kHz, 16-bit, mono
PCM, WAV = 1, 2

# SOE error codes (the common ones live in sandbox.tencent).
PAST_SEQ_ID_LOSE = "FailedOperation.PastSeqIdLose"
SEQ_ID_EXPIRED = "FailedOperation.SeqIdExpired"
SESSION_EXPIRED = "FailedOperation.SessionExpired"
NEED_INIT = "FailedOperation.NeedInitBeforeEvaluation"
CANNOT_FIND_SESSION = "InternalError.CannotFindSession"
SESSION_ID_IN_USE = "InvalidParameterValue.SessionIdInUse"
SEQ_ID_LIMIT = "InvalidParameter.SeqIdLimitExceeded"
INVALID_SEQ_ID = "InvalidParameterValue.InvalidSeqId"
SIZE_MUST_BE_EVEN = "InvalidParameterValue.AudioSizeMustBeEven"
RESULT_EXPIRED = "FailedOperation.ResultExpired"
SERVER_OVERLOAD = "InternalError.ServerOverload"
BASE64_DECODE_FAILED = "InternalError.BASE64DecodeFailed"
INVALID_WAV_HEADER = "InternalError.InvalidWAVHeader"
REF_TEXT_EMPTY = "InternalError.RefTxtEmpty"
VOICE_TOO_LONG = "InvalidParameterValue.VoiceLengthTooLong"
AUDIO_LIMIT_EXCEEDED = "InvalidParameterValue.AudioLimitExceeded"


@dataclass(frozen=True)
class Chunk:
    seq_id: int
    data: bytes
    is_end: bool
    voice_file_type: int

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.data).digest()

    def check(self) -> None:
        """Rules that need no session: SeqId range and whole 16-bit samples."""
        if self.seq_id < 1:
            raise TencentError(INVALID_SEQ_ID, "SeqId starts at 1")
        if self.seq_id > MAX_SEQ_ID:
            raise TencentError(SEQ_ID_LIMIT, f"SeqId must not exceed {MAX_SEQ_ID}")
        if self.voice_file_type in (PCM, WAV) and len(self.data) % 2:
            raise TencentError(
                SIZE_MUST_BE_EVEN,
                "UserVoiceData has an odd number of bytes: a chunk must not split a 16-bit sample",
            )
        if len(self.data) > MAX_REQUEST_AUDIO_BYTES:
            raise TencentError(VOICE_TOO_LONG, "The audio of one request is longer than 3 MB")


def _wav_data_start(chunk: Chunk) -> int:
    """Where a WAV's samples start, having checked its header is 16 kHz mono 16-bit PCM."""
    data = chunk.data
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TencentError(
            INVALID_WAV_HEADER, "The first chunk of a wav file must start with a RIFF/WAVE header"
        )
    at, fmt = 12, None
    while at + 8 <= len(data):
        name, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if name == b"fmt ":
            fmt = data[at + 8 : at + 24]
        if name == b"data":
            _check_wav_format(fmt)
            return at + 8
        at += 8 + size + size % 2
    raise TencentError(INVALID_WAV_HEADER, "The WAV header is not within the first chunk")


def _check_wav_format(fmt: bytes | None) -> None:
    if fmt is None or len(fmt) < 16:
        raise TencentError(INVALID_WAV_HEADER, "The WAV header has no fmt chunk before its data")
    tag, channels = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[2:4], "little")
    rate, bits = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[14:16], "little")
    if (tag, channels, rate, bits) != (1, 1, 16000, 16):
        raise TencentError(
            INVALID_WAV_HEADER,
            f"SOE takes 16 kHz mono 16-bit PCM WAV; the header says format {tag}, {rate} Hz, "
            f"{channels} channel(s), {bits}-bit",
        )


@dataclass
class Session:
    session_id: str
    kind: str  # "oral" (Transmit*, InitOralProcess) or "keyword" (KeywordEvaluate)
    params: dict[str, Any]
    one_shot: bool = False  # WorkMode 1: every Transmit is SeqId 1 with IsEnd 1
    is_async: bool = False  # IsAsync 1: no chunk's answer carries the score, IsQuery does
    limit_s: float | None = None  # the longest PCM/WAV audio the session's mode takes
    touched: float = field(default_factory=time.monotonic)  # the last chunk accepted
    finished_at: float | None = None
    ready_at: float | None = None  # when IsQuery has the result
    queries: int = 0
    header_bytes: int = 0  # a WAV's header, not audio
    digests: list[bytes] = field(default_factory=list)  # sha256 of each chunk, index SeqId - 1
    parts: list[bytes] = field(default_factory=list)  # dropped once finished
    size: int = 0
    end_seq_id: int | None = None
    result: Any = None  # oral: the score() fields; keyword: the KeywordScores list
    audio_hash: Any = field(default_factory=hashlib.sha256)

    @property
    def last(self) -> int:
        return len(self.digests)

    @property
    def finished(self) -> bool:
        return self.result is not None

    def expired(self, ttl_s: float) -> bool:
        """No chunk for ``ttl_s`` (unfinished), or the result kept ``ttl_s`` already (finished)."""
        since = self.finished_at if self.finished_at is not None else self.touched
        return time.monotonic() - since > ttl_s

    @property
    def ready(self) -> bool:
        return self.finished and (self.ready_at is None or time.monotonic() >= self.ready_at)

    def finish(self, result: Any, delay_s: float = 0.0) -> None:
        self.result, self.finished_at = result, time.monotonic()
        self.ready_at = self.finished_at + (delay_s if self.is_async else 0.0)

    def accept(self, chunk: Chunk) -> bool:
        """Apply the chunk rules; True when the session is now complete and must be scored."""
        if chunk.seq_id <= self.last:
            return self._replay(chunk)
        if self.finished:
            raise TencentError(
                SESSION_EXPIRED, "The session is already finished; start a new session"
            )
        if chunk.seq_id > self.last + 1:
            raise TencentError(
                PAST_SEQ_ID_LOSE, f"Chunks are missing: resend from SeqId {self.last + 1}"
            )
        self._append(chunk)
        return chunk.is_end

    def _replay(self, chunk: Chunk) -> bool:
        if chunk.digest != self.digests[chunk.seq_id - 1]:
            code = SESSION_EXPIRED if self.finished else SEQ_ID_EXPIRED
            raise TencentError(
                code, f"SeqId {chunk.seq_id} was already received with different data"
            )
        completes = chunk.is_end and chunk.seq_id == self.last and not self.finished
        if completes:
            self.end_seq_id = chunk.seq_id
        return completes

    def _append(self, chunk: Chunk) -> None:
        header = _wav_data_start(chunk) if chunk.seq_id == 1 and chunk.voice_file_type == WAV else 0
        self._check_length(chunk, header)
        self.header_bytes += header
        self.touched = time.monotonic()
        self.digests.append(chunk.digest)
        self.parts.append(chunk.data)
        self.audio_hash.update(chunk.data)
        self.size += len(chunk.data)
        if chunk.is_end:
            self.end_seq_id = chunk.seq_id

    def _check_length(self, chunk: Chunk, header: int) -> None:
        if self.limit_s is None or chunk.voice_file_type not in (PCM, WAV):
            return
        audio = self.size + len(chunk.data) - self.header_bytes - header
        if audio > self.limit_s * BYTES_PER_SECOND:
            raise TencentError(
                AUDIO_LIMIT_EXCEEDED,
                f"The audio is longer than {self.limit_s:g} s, the most this evaluation mode takes",
            )

    def take_audio(self) -> bytes:
        """The reassembled audio, once: the chunks are dropped to keep memory flat."""
        audio, self.parts = b"".join(self.parts), []
        return audio

    def answers_final(self, seq_id: int) -> bool:
        """Does a (replayed) chunk ``seq_id`` get the final result? Never in async mode."""
        return self.finished and seq_id == self.end_seq_id and not self.is_async

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "chunks": self.last,
            "bytes": self.size,
            "audio_sha256": self.audio_hash.hexdigest(),
            "finished": self.finished,
            "async": self.is_async,
            "queries": self.queries,
            "result": self.result,
        }
