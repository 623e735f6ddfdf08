"""SOE evaluation: stream a job's audio to Tencent SOE in chunks and keep the scores.

The task takes a check id, re-reads the row and works from its checkpoint:
``session_id`` and ``chunks_sent`` are committed before and after each chunk,
so a retried or redelivered task continues the same vendor session where it
stopped, and a session the vendor has lost is restarted from the first chunk.

Before anything is sent the audio is made what SOE takes (:func:`tasks.audio.prepare`:
decoded to 16 kHz mono PCM when it is not), checked against the mode's length limit,
and cut into chunks few enough for SeqId's 3000 (:func:`tasks.audio.chunk_bytes_for`).

A final chunk acknowledged without its result (async mode, or the vendor still
evaluating) is checkpointed too, with the end of the vendor's result window in
``deadline_at``: the result is then asked for with ``IsQuery`` (by the beat for async
sessions: :func:`poll_async`), by any later delivery as well, until the window ends;
after it, a new session. A final chunk whose answer was lost on the way is asked for
the same way before it is sent again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from config.celery import SOE_EVALUATE
from config.settings import Settings, get_settings
from models import CheckStatus
from models.base import utcnow
from models.db import autocommit, transaction
from tasks import (
    breaker,
    clients,
    common,
    crashpoints,
    decoder,
    lifecycle,
    liveness,
    logctx,
    metrics,
    outcome,
    policy,
)
from tasks.app import app
from tasks.audio import Chunk, Prepared, chunk_bytes_for, chunk_count, iter_chunks, prepare
from tasks.dispatch import enqueue
from tasks.infra import INFRA_ERRORS, retry_after_infra_error
from tasks.limits import SoeLimits
from tasks.outcome import Outcome
from tasks.ratelimit import Throttled
from vendors.errors import BadResponse, Disposition, InvalidInput, TransportError, VendorError
from vendors.soe import KeywordResult, SoeClient, SoeParams, SoeResult
from vendors.tc3 import Credentials

log = logging.getLogger("voxqueue.soe")

ONESHOT_MAX_BYTES = 3 * 1024 * 1024  # one TransmitOralProcess request (VoiceLengthTooLong above it)
FIRST_POLL_S = 1.0  # an async session's first IsQuery, after its final chunk
Result = SoeResult | KeywordResult


@dataclass(frozen=True)
class Plan:
    """Everything the transmission needs, read from the check in one transaction."""

    lease: common.Lease
    mode: str  # "stream" | "oneshot" | "async"
    params: SoeParams
    keywords: tuple[str, ...]

    @property
    def check_id(self) -> int:
        return self.lease.check_id

    @property
    def audio(self) -> str:
        return self.lease.job.audio

    @property
    def session_id(self) -> str:
        return self.lease.session_id

    @property
    def chunks_sent(self) -> int:
        return self.lease.chunks_sent

    @property
    def resumed(self) -> bool:
        """An earlier delivery may have sent chunks of this session."""
        return self.chunks_sent > 0 or self.lease.deliveries > 0 or self.lease.attempts > 0

    @classmethod
    def from_lease(cls, lease: common.Lease) -> Plan:
        options = lease.job.options
        mode = options.get("soe_mode", "stream")
        return cls(lease, mode, params_for(options), tuple(options.get("keywords") or ()))


def params_for(options: dict[str, Any]) -> SoeParams:
    """The session's parameters from the job's options (``VoiceFileType`` is the prepared audio's)."""
    return SoeParams(
        ref_text=options.get("ref_text") or "",
        eval_mode=options.get("eval_mode", 1),
        score_coeff=float(options.get("score_coeff", 1.0)),
        server_type=1 if options.get("lang") == "zh" else 0,
        is_async=int(options.get("soe_mode") == "async"),
    )


def client(settings: Settings, before_send: clients.Hook = None) -> SoeClient:
    token = settings.tencent_token.get_secret_value() if settings.tencent_token else None
    credentials = Credentials(
        settings.tencent_secret_id, settings.tencent_secret_key.get_secret_value(), token
    )
    return SoeClient(
        settings.soe_endpoint, credentials, region=settings.tencent_region,
        app_id=settings.soe_app_id, timeout=settings.vendor_timeout, before_send=before_send,
    )


@app.task(bind=True, name=SOE_EVALUATE, acks_late=True, ignore_result=True, max_retries=None)
def evaluate(self, check_ids: list[int]) -> str:
    """Evaluate checks' audio with SOE, one file after another (idempotent: safe to deliver twice).

    Large batches travel a few checks to a message (``tasks.dispatch``); a check that
    must go again (throttled, a retryable failure) waits for the others of its group
    and leaves with them in one retry message. Returns what happened (:mod:`tasks.outcome`),
    which Flower shows as the task's result.
    """
    ids = list(check_ids)
    settings = get_settings()
    outcomes: dict[int, Outcome] = {}
    handed_back: list[int] = []
    for position, check_id in enumerate(ids):
        if liveness.stopping.is_set():  # the worker is stopping: the rest go back unclaimed
            handed_back += ids[position:]
            break
        again = [i for i, o in outcomes.items() if o.kind == outcome.RETRY]
        try:
            found = _evaluate_one(check_id, settings)
        except INFRA_ERRORS as error:
            raise retry_after_infra_error(self, ids[position:] + again, error) from error
        if found.kind == outcome.HANDED_BACK:
            handed_back += ids[position:]
            break
        outcomes[check_id] = found
        if found.kind == outcome.RETRY and _pauses_the_rest(found.error):
            outcomes.update(dict.fromkeys(ids[position + 1:], found))  # unclaimed: none to release
            break
    if handed_back:  # to another worker at once, in new messages
        log.info("worker stopping: handing back %d soe check(s)", len(handed_back))
        enqueue([(check_id, "soe") for check_id in handed_back])
        outcomes.update(dict.fromkeys(handed_back, Outcome(outcome.HANDED_BACK)))
    again = {i: o for i, o in outcomes.items() if o.kind == outcome.RETRY}
    if again:
        countdown = policy.soe(settings).countdown(0, max(o.wait for o in again.values()))
        line = outcome.summary(list(outcome.sent_again(outcomes, countdown).values()))
        log.info("soe: %s", line)
        # Flower shows the retry's exception: the outcome line (each vendor error is logged above).
        raise self.retry(args=[list(again)], countdown=countdown, exc=outcome.SentAgain(line),
                         max_retries=None)
    return outcome.summary(list(outcomes.values()))


def _pauses_the_rest(why: Exception) -> bool:
    """The shared limit is saturated, the breaker is open or SOE throttles: the group's other
    files would only be claimed to step aside in turn."""
    if isinstance(why, (Throttled, breaker.CircuitOpen)):
        return True
    return isinstance(why, VendorError) and why.disposition is Disposition.THROTTLED


def _evaluate_one(check_id: int, settings: Settings) -> Outcome:
    """Claim and evaluate one check."""
    with autocommit() as conn:  # one statement on PostgreSQL, one round trip
        lease = common.take_lease(conn, check_id, settings, new_session_id=new_session_id())
    if lease is None:
        return Outcome(outcome.SKIPPED)
    if common.poisoned(None, lease, settings):
        return outcome.failed("poison")
    crashpoints.hit(lease.job.key)
    with logctx.bound(job=lease.job.key, service="soe", check_id=check_id):
        try:
            plan = Plan.from_lease(lease)
        except Exception as exc:  # noqa: BLE001  (options no request can be built from: see common.unexpected)
            error = common.unexpected("soe", exc)
            _fail(lease, error)
            return outcome.failed(error.reason)
        return _run(plan, settings)


def _run(plan: Plan, settings: Settings) -> Outcome:
    try:
        breaker.check("soe")
        soe = client(settings, clients.slot("soe", max_wait=2.0))  # a slot as each request leaves
        result, chunks = transmit(soe, plan, settings)
    except (Throttled, breaker.CircuitOpen) as pause:  # no attempt spent: come back later
        common.release(plan.check_id)
        return outcome.retry(pause.wait, outcome.retry_reason(pause), pause)
    except liveness.HandBack:  # its checkpoint (chunks_sent) is kept: the next delivery resumes
        common.release(plan.check_id)
        return Outcome(outcome.HANDED_BACK)
    except VendorError as error:
        breaker.breaker().record("soe", error)
        log.warning("soe failed: %s", error.summary(),
                    extra={"reason": error.reason, "vendor_request_id": error.request_id})
        wait = _handle_error(plan.lease, error, settings)
        if wait is None:
            return outcome.failed(error.reason)
        return outcome.retry(wait, outcome.retry_reason(error), error)
    except INFRA_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001  (fails the check now: see common.unexpected)
        error = common.unexpected("soe", exc)
        _fail(plan.lease, error)
        return outcome.failed(error.reason)
    breaker.breaker().record("soe", None)
    if result is None:
        log.info("soe async: every chunk is in, the result is polled", extra={"session_id": plan.session_id})
        return Outcome(outcome.POLLED)
    log.info("soe evaluated", extra={"vendor_request_id": getattr(result, "request_id", None),
                                     "session_id": plan.session_id})
    _store(plan, result, chunks)
    return outcome.done()


def new_session_id() -> str:
    return str(uuid.uuid4())


def transmit(soe: SoeClient, plan: Plan, settings: Settings) -> tuple[Result | None, int]:
    """Send the chunks not yet acknowledged; return the result (None: an async session, its
    result polled on the beat) and the number of chunks."""
    limits = SoeLimits.from_settings(settings)
    with _prepared(plan, settings, limits) as audio:
        params = dataclasses.replace(plan.params, voice_file_type=audio.voice_file_type)
        if plan.mode == "oneshot":
            return _oneshot(soe, plan, params, audio), 1
        size = chunk_bytes_for(audio.size, settings.soe_chunk_bytes)
        total = chunk_count(audio.size, size)
        if plan.chunks_sent >= total:  # every chunk was acknowledged by an earlier delivery
            return _recover(soe, plan, params, settings), total
        send = _sender(soe, plan, params)
        for chunk in iter_chunks(audio.stream, size, start_seq=plan.chunks_sent + 1):
            if liveness.stopping.is_set():
                raise liveness.HandBack
            if chunk.is_end:
                return _final(soe, plan, params, send, chunk, settings), total
            result = with_chunk_retries(lambda c=chunk: send(c), chunk)
            log.debug("chunk accepted", extra={"seq": chunk.seq, "vendor_request_id": result.request_id})
            common.renew(plan.check_id, settings, chunks_sent=chunk.seq)
    raise VendorError("soe", "no_final_chunk", "the audio ended before its last chunk", disposition=Disposition.RETRY)


@contextlib.contextmanager
def _prepared(plan: Plan, settings: Settings, limits: SoeLimits) -> Iterator[Prepared]:
    """:func:`tasks.audio.prepare`, within the mode's length limit: a longer file fails before
    anything is sent (decoding stops at the limit)."""
    mode = plan.params.eval_mode
    try:
        with prepare(plan.audio or "", max_seconds=limits.max_seconds(mode), timeout=settings.vendor_timeout) as audio:
            error = limits.audio_error(audio.seconds, mode)
            if error:
                raise InvalidInput("soe", "audio_too_long", error)
            yield audio
    except decoder.TooLong as exc:
        seconds = exc.args[0] / decoder.BYTES_PER_SECOND
        raise InvalidInput("soe", "audio_too_long", limits.audio_error(seconds, mode, at_least=True)) from None


def _sender(soe: SoeClient, plan: Plan, params: SoeParams) -> Callable[[Chunk], Result]:
    """One chunk to the action the plan needs: KeywordEvaluate or TransmitOralProcessWithInit."""
    if plan.keywords:
        return lambda c: soe.keyword_evaluate(plan.session_id, c.seq, c.is_end, c.data,
                                              list(plan.keywords), params)
    return lambda c: soe.transmit_with_init(plan.session_id, c.seq, c.is_end, c.data, params)


def _query(soe: SoeClient, plan: Plan, params: SoeParams) -> Result:
    """``IsQuery=1`` with the session's own action: KeywordEvaluate for a keyword session."""
    return soe.query(plan.session_id, params, keywords=list(plan.keywords) or None)


def _finished(result: Result | None) -> bool:
    return result is not None and result.finished


def _final(soe: SoeClient, plan: Plan, params: SoeParams, send, chunk: Chunk, settings: Settings) -> Result | None:
    """The last chunk. A delivery that resumes here asks first whether the one before sent it;
    an answer lost on the way is asked for before the chunk goes again (:func:`with_chunk_retries`)."""
    if plan.resumed and chunk.seq == plan.chunks_sent + 1:
        found = _try_query(soe, plan, params)
        if found is not None:
            return found
    result = with_chunk_retries(lambda: send(chunk), chunk, recover=lambda: _try_query(soe, plan, params))
    if _finished(result):
        return result
    # Acknowledged, no result yet: recorded, so a later delivery asks for it instead of sending again.
    window = utcnow() + dt.timedelta(seconds=settings.soe_result_window_seconds)
    if plan.mode == "async":
        common.release(plan.check_id, chunks_sent=chunk.seq, vendor_task_id=plan.session_id,
                       next_poll_at=utcnow() + dt.timedelta(seconds=FIRST_POLL_S), deadline_at=window, polls=0)
        return None
    common.renew(plan.check_id, settings, chunks_sent=chunk.seq, deadline_at=window)
    return _await_result(soe, plan, params)


def _try_query(soe: SoeClient, plan: Plan, params: SoeParams) -> Result | None:
    """The session's result if the vendor has it finished; None otherwise (also when it knows no
    such session: the final chunk never arrived)."""
    try:
        result = with_chunk_retries(lambda: _query(soe, plan, params), None)
    except VendorError as error:
        log.info("soe query before the last chunk: %s", error.summary(), extra={"reason": error.reason})
        return None
    return result if _finished(result) else None


def _recover(soe: SoeClient, plan: Plan, params: SoeParams, settings: Settings) -> Result | None:
    """Every chunk is in: within the result window, ask for the result; after it, a new session."""
    deadline = plan.lease.deadline_at  # read by the claim
    if deadline is None or utcnow() >= deadline:
        raise VendorError("soe", "result_expired", "the session's result window has passed: a new session",
                          disposition=Disposition.RESTART)
    if plan.mode != "async":
        return _await_result(soe, plan, params)
    result = with_chunk_retries(lambda: _query(soe, plan, params), None)
    if _finished(result):
        return result
    common.release(plan.check_id, vendor_task_id=plan.session_id,  # back to the beat's polling
                   next_poll_at=utcnow() + dt.timedelta(seconds=FIRST_POLL_S))
    return None


def _oneshot(soe: SoeClient, plan: Plan, params: SoeParams, audio: Prepared) -> SoeResult:
    """InitOralProcess, then the whole file in one TransmitOralProcess (3 MB at most)."""
    if audio.size > ONESHOT_MAX_BYTES:
        raise InvalidInput("soe", "audio_too_large", f"oneshot sends the audio in one request; it is "
                           f"{audio.size} bytes, over SOE's 3 MB a request: use soe_mode stream")
    data = audio.stream.read()
    if plan.chunks_sent == 0:
        soe.init_oral_process(plan.session_id, params)
    return with_chunk_retries(
        lambda: soe.transmit(plan.session_id, 1, True, data, voice_file_type=params.voice_file_type),
        Chunk(1, data, True),
    )


def _await_result(soe: SoeClient, plan: Plan, params: SoeParams) -> Result:
    for attempt in range(1, policy.SOE_RESULT.attempts + 1):
        result = with_chunk_retries(lambda: _query(soe, plan, params), None)
        if result.finished:
            return result
        if isinstance(result, SoeResult) and result.failed:
            raise VendorError("soe", "evaluation_failed", "the vendor's evaluation failed (Status Failed)",
                              disposition=Disposition.RESTART)
        liveness.pause(policy.SOE_RESULT.delay(attempt))
    raise VendorError("soe", "result_timeout", "the session never reached Finished", disposition=Disposition.RETRY)


def with_chunk_retries(call: Callable[[], Any], chunk: Chunk | None, *, sleep=liveness.pause,
                       recover: Callable[[], Any] | None = None) -> Any:
    """Call, retrying transient failures and throttling of this one request in process.

    Every request takes a slot of SOE's shared rate limit as it leaves (raising
    ``Throttled`` when the next slot is too far away, so the task steps aside).
    ``recover``: when the request's answer was lost (no answer, or one that could not
    be read: the vendor may have processed it), what it would have answered, or None
    to send it again. A failure retried here is counted by the circuit breaker (the last
    one by the caller, :func:`_run`); once the circuit is open, no retry is sent.
    """
    tries, waited = 0, 0.0
    while True:
        try:
            return call()
        except VendorError as error:
            metrics.vendor_error("soe", error)
            found = recover() if recover is not None and isinstance(error, TransportError | BadResponse) else None
            if found is not None:
                return found
            kind = error.disposition
            if kind is Disposition.THROTTLED and waited < policy.SOE_THROTTLE_BUDGET_S:
                pause = error.retry_after or policy.SOE_THROTTLED.delay(int(waited) + 1)
            elif kind is Disposition.RETRY and not policy.SOE_CHUNK.exhausted(tries + 1):
                # Every failed call counts towards an outage, and one that opens the circuit
                # stops the retries in place: the task steps aside (CircuitOpen, no attempt spent).
                breaker.breaker().record("soe", error)
                breaker.check("soe")
                tries += 1
                pause = policy.SOE_CHUNK.delay(tries)
            else:
                raise
            seq = chunk.seq if chunk else "query"
            metrics.count("vendor_retries", vendor="soe", scope="request")
            log.info("soe retry: %s", error.summary(), extra={"seq": seq, "reason": error.reason,
                                                              "wait_s": round(pause, 3)})
            sleep(pause)
            waited += pause


def _handle_error(lease: common.Lease, error: VendorError, settings: Settings) -> float | None:
    """Fail the check, or release it for a retry and return the backoff before it (its attempts
    are the lease's: no other delivery works on the check while this one holds it)."""
    attempts = lease.attempts + 1
    if error.disposition is Disposition.PERMANENT or policy.soe(settings).exhausted(attempts):
        _fail(lease, error)
        return None
    restart = {}
    if error.disposition is Disposition.RESTART:  # nothing of the old session is asked for again
        restart = {"session_id": new_session_id(), "chunks_sent": 0, "vendor_task_id": None,
                   "next_poll_at": None, "deadline_at": None}
    elif error.disposition is Disposition.RESEND:
        restart = {"chunks_sent": 0}  # the vendor accepts already-received chunks again
    metrics.count("vendor_retries", vendor="soe", scope="check")
    common.release(lease.check_id, attempts=attempts, error_reason=error.reason,
                   error=error.summary(),
                   **restart)
    return policy.soe(settings).countdown(attempts)


def _fail(lease: common.Lease, error: VendorError) -> None:
    """Failed for good; an async session's is forgotten, so ``voxqueue retry`` starts it anew
    and the beat never asks for it again."""
    with transaction() as conn:
        lifecycle.fail(conn, lease, error.reason, error.summary(), vendor_task_id=None,
                       next_poll_at=None)


def _store(plan: Plan, result: Result, chunks: int) -> None:
    lifecycle.end(plan.lease, CheckStatus.DONE, chunks_sent=chunks, result=raw_result(result), **scores_of(result))


def scores_of(result: SoeResult | KeywordResult) -> dict[str, float | None]:
    if isinstance(result, SoeResult):
        return {
            "suggested_score": result.suggested_score, "pron_accuracy": result.pron_accuracy,
            "pron_fluency": result.pron_fluency, "pron_completion": result.pron_completion,
        }
    scores = result.scores
    names = ("suggested_score", "pron_accuracy", "pron_fluency", "pron_completion")
    return {n: _mean([s.get(n) for s in scores]) for n in names}


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def raw_result(result: SoeResult | KeywordResult) -> dict[str, Any]:
    return {k: v for k, v in result.raw.items() if k != "RequestId"}
