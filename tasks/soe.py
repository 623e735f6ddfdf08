"""SOE evaluation: stream a job's audio to Tencent SOE in chunks and keep the scores.

The task takes a check id, re-reads the row and works from its checkpoint:
``session_id`` and ``chunks_sent`` are committed before and after each chunk,
so a retried or redelivered task continues the same vendor session where it
stopped, and a session the vendor has lost is restarted from the first chunk.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.settings import Settings, get_settings
from models import Check, CheckStatus
from models.db import session_scope, transaction
from tasks import breaker, common, crashpoints, liveness
from tasks.audio import Chunk, iter_chunks, open_audio
from tasks.dispatch import enqueue
from tasks.infra import INFRA_ERRORS, retry_after_infra_error
from tasks.ratelimit import Throttled, take
from vendors import http
from vendors.errors import Disposition, VendorError
from vendors.http import backoff
from vendors.soe import KeywordResult, SoeClient, SoeParams, SoeResult, voice_file_type_for
from vendors.tc3 import Credentials
from workers import logctx
from workers.app import app

log = logging.getLogger("voxqueue.soe")

CHUNK_TRIES = 4  # in-process tries of one chunk before the task itself is retried
THROTTLE_WAIT_S = 20.0  # in-process waiting on throttling before the task is retried


@dataclass(frozen=True)
class Plan:
    """Everything the transmission needs, read from the check in one transaction."""

    lease: common.Lease
    mode: str  # "stream" | "oneshot"
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

    @classmethod
    def from_lease(cls, lease: common.Lease) -> Plan:
        options = lease.job.options
        params = SoeParams(
            ref_text=options.get("ref_text") or "",
            eval_mode=options.get("eval_mode", 1),
            score_coeff=float(options.get("score_coeff", 1.0)),
            server_type=1 if options.get("lang") == "zh" else 0,
            voice_file_type=voice_file_type_for(lease.job.audio or ""),
        )
        return cls(
            lease, options.get("soe_mode", "stream"), params, tuple(options.get("keywords") or ()),
        )


def client(settings: Settings) -> SoeClient:
    token = settings.tencent_token.get_secret_value() if settings.tencent_token else None
    credentials = Credentials(
        settings.tencent_secret_id, settings.tencent_secret_key.get_secret_value(), token
    )
    return SoeClient(
        settings.soe_endpoint, credentials, region=settings.tencent_region,
        app_id=settings.soe_app_id, timeout=settings.vendor_timeout,
    )


@app.task(bind=True, name="voxqueue.soe.evaluate", acks_late=True, ignore_result=True, max_retries=None)
def evaluate(self, check_ids: list[int] | int) -> None:
    """Evaluate checks' audio with SOE, one file after another (idempotent: safe to deliver twice).

    Large batches travel a few checks to a message (``tasks.dispatch``); a check that
    must go again (throttled, a retryable failure) waits for the others of its group
    and leaves with them in one retry message.
    """
    ids = check_ids if isinstance(check_ids, list) else [check_ids]
    settings = get_settings()
    again: dict[int, float] = {}
    last_error: Exception | None = None
    handed_back: list[int] = []
    for position, check_id in enumerate(ids):
        if liveness.stopping.is_set():  # the worker is stopping: the rest go back unclaimed
            handed_back += ids[position:]
            break
        try:
            outcome = _evaluate_one(check_id, settings)
        except INFRA_ERRORS as error:
            raise retry_after_infra_error(self, ids[position:] + list(again), error) from error
        if outcome is not None and isinstance(outcome[1], liveness.HandBack):
            handed_back += ids[position:]
            break
        if outcome is not None:
            again[check_id], last_error = outcome
            if _pauses_the_rest(last_error):  # the rest are not claimed: nothing to release
                again.update(dict.fromkeys(ids[position + 1:], outcome[0]))
                break
    if handed_back:  # to another worker at once, in new messages
        log.info("worker stopping: handing back %d soe check(s)", len(handed_back))
        enqueue([(check_id, "soe") for check_id in handed_back])
    if again:
        args = [list(again)] if isinstance(check_ids, list) else [ids[0]]
        raise self.retry(args=args, countdown=max(again.values()), exc=last_error, max_retries=None)


def _pauses_the_rest(why: Exception) -> bool:
    """The shared limit is saturated, the breaker is open or SOE throttles: the group's other
    files would only be claimed to step aside in turn."""
    if isinstance(why, (Throttled, breaker.CircuitOpen)):
        return True
    return isinstance(why, VendorError) and why.disposition is Disposition.THROTTLED


def _evaluate_one(check_id: int, settings: Settings) -> tuple[float, Exception] | None:
    """Claim and evaluate one check; (seconds, why) when it must go again later."""
    with transaction() as conn:
        lease = common.take_lease(conn, check_id, settings, new_session_id=new_session_id())
        if lease is None or common.poisoned(conn, lease, settings):
            return None
    plan = Plan.from_lease(lease)
    crashpoints.hit(lease.job.key)
    with logctx.bound(job=lease.job.key, service="soe", check_id=check_id):
        return _run(plan, settings)


def _run(plan: Plan, settings: Settings) -> tuple[float, Exception] | None:
    try:
        breaker.check("soe")
        result, chunks = transmit(client(settings), plan, settings)
    except (Throttled, breaker.CircuitOpen) as pause:  # no attempt spent: come back later
        common.release(plan.check_id)
        return pause.wait, pause
    except liveness.HandBack as stop:  # its checkpoint (chunks_sent) is kept: the next delivery resumes
        common.release(plan.check_id)
        return 0.0, stop
    except VendorError as error:
        breaker.breaker().record("soe", error)
        log.warning("soe failed: %s", error.summary(),
                    extra={"reason": error.reason, "vendor_request_id": error.request_id})
        wait = _handle_error(plan.check_id, error, settings)
        return None if wait is None else (wait, error)
    except INFRA_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001  (fails the check now: see common.unexpected)
        common.fail_by_id(plan.check_id, common.unexpected("soe", exc))
        return None
    breaker.breaker().record("soe", None)
    log.info("soe evaluated", extra={"vendor_request_id": getattr(result, "request_id", None),
                                     "session_id": plan.session_id})
    _store(plan, result, chunks)
    return None


def new_session_id() -> str:
    return str(uuid.uuid4())


def transmit(soe: SoeClient, plan: Plan, settings: Settings) -> tuple[SoeResult | KeywordResult, int]:
    """Send the chunks not yet acknowledged; return the result and the number of chunks."""
    if plan.mode == "oneshot":
        return _oneshot(soe, plan)
    send = _sender(soe, plan)
    result, last = None, plan.chunks_sent
    with open_audio(plan.audio, timeout=settings.vendor_timeout) as stream:
        for chunk in iter_chunks(stream, settings.soe_chunk_bytes, start_seq=plan.chunks_sent + 1):
            if liveness.stopping.is_set():
                raise liveness.HandBack
            result = with_chunk_retries(lambda c=chunk: send(c), chunk)
            log.debug("chunk accepted", extra={"seq": chunk.seq, "vendor_request_id": result.request_id})
            if not chunk.is_end:  # storing the result records the last one
                common.renew(plan.check_id, settings, chunks_sent=chunk.seq)
            last = chunk.seq
    if result is None or (isinstance(result, SoeResult) and not result.finished):
        result = _await_result(soe, plan)  # every chunk was sent by an earlier delivery
    return result, last


def _sender(soe: SoeClient, plan: Plan) -> Callable[[Chunk], SoeResult | KeywordResult]:
    """One chunk to the action the plan needs: KeywordEvaluate or TransmitOralProcessWithInit."""
    if plan.keywords:
        return lambda c: soe.keyword_evaluate(plan.session_id, c.seq, c.is_end, c.data,
                                              list(plan.keywords), plan.params)
    return lambda c: soe.transmit_with_init(plan.session_id, c.seq, c.is_end, c.data, plan.params)


def _oneshot(soe: SoeClient, plan: Plan) -> tuple[SoeResult, int]:
    with open_audio(plan.audio) as stream:
        data = stream.read()
    if plan.chunks_sent == 0:
        soe.init_oral_process(plan.session_id, plan.params)
    return with_chunk_retries(
        lambda: soe.transmit(plan.session_id, 1, True, data, voice_file_type=plan.params.voice_file_type),
        Chunk(1, data, True),
    ), 1


def _await_result(soe: SoeClient, plan: Plan, tries: int = 10) -> SoeResult:
    for attempt in range(1, tries + 1):
        result = with_chunk_retries(lambda: soe.query(plan.session_id, plan.params), None)
        if result.finished:
            return result
        liveness.pause(backoff(attempt, base=0.2, cap=3.0))
    raise VendorError("soe", "result_timeout", "the session never reached Finished", disposition=Disposition.RETRY)


def with_chunk_retries(call: Callable[[], Any], chunk: Chunk | None, *, sleep=liveness.pause) -> Any:
    """Call, retrying transient failures and throttling of this one request in process.

    Every request takes a slot of SOE's shared rate limit as it leaves (raising
    ``Throttled`` when the next slot is too far away, so the task steps aside).
    """
    tries, waited = 0, 0.0
    while True:
        try:
            with http.gate(lambda: take("soe", max_wait=2.0)):  # the slot is taken as the chunk leaves
                return call()
        except VendorError as error:
            if error.disposition is Disposition.THROTTLED and waited < THROTTLE_WAIT_S:
                pause = error.retry_after or backoff(int(waited) + 1, base=0.25, cap=4.0)
            elif error.disposition is Disposition.RETRY and tries + 1 < CHUNK_TRIES:
                tries += 1
                pause = backoff(tries, base=0.2, cap=4.0)
            else:
                raise
            seq = chunk.seq if chunk else "query"
            log.info("soe retry: %s", error.summary(), extra={"seq": seq, "reason": error.reason,
                                                              "wait_s": round(pause, 3)})
            sleep(pause)
            waited += pause


def _handle_error(check_id: int, error: VendorError, settings: Settings) -> float | None:
    """Fail the check, or release it for a retry and return the backoff before it."""
    if error.disposition is Disposition.PERMANENT:
        common.fail_by_id(check_id, error)
        return None
    with session_scope() as session:
        check = session.get(Check, check_id)
        if check is None:
            return None
        attempts = check.attempts + 1
    if attempts >= settings.soe_max_attempts:
        common.fail_by_id(check_id, error)
        return None
    restart = {}
    if error.disposition is Disposition.RESTART:
        restart = {"session_id": new_session_id(), "chunks_sent": 0}
    elif error.disposition is Disposition.RESEND:
        restart = {"chunks_sent": 0}  # the vendor accepts already-received chunks again
    common.release(check_id, attempts=attempts, error_reason=error.reason, error=error.summary(), **restart)
    return backoff(attempts, base=1.0, cap=300.0)


def _store(plan: Plan, result: SoeResult | KeywordResult, chunks: int) -> None:
    with transaction() as conn:
        common.finish(conn, plan.lease, CheckStatus.DONE,
                      chunks_sent=chunks, result=_raw(result), **_scores(result))


def _scores(result: SoeResult | KeywordResult) -> dict[str, float | None]:
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


def _raw(result: SoeResult | KeywordResult) -> dict[str, Any]:
    return {k: v for k, v in result.raw.items() if k != "RequestId"}
