"""Property-based fuzzing (hypothesis) of every webhook view, over a real socket, on both databases.

The properties, for any body: the receiver answers 2xx or 4xx, never 5xx; its log has no
traceback; an unauthenticated body is never stored; and a stored (authenticated) event is
merged or ignored by one merge, never left "received" for housekeeping to send again.
Bodies are vendor-shaped (the fields the parsers read, with values of any JSON type) or
arbitrary JSON or bytes. The example count is bounded and derandomized: the same cases
run every time.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.results import merge
from tests.workers import hostile
from tests.workers.webhook_helpers import check_row, events, make_check
from vendors.gme import sign_callback
from workers.webhooks import SIGNAL_GAP_S

EXAMPLES = 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

pytestmark = pytest.mark.usefixtures("keys")

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=12)


def maybe(strategy):
    """A field's value: usually what the vendor sends, sometimes anything at all."""
    return st.one_of(strategy, strategy, values)


def fields(**named) -> st.SearchStrategy[dict]:
    """A dict with any subset of ``named`` fields, plus perhaps a stray one."""
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in named.items()}).flatmap(
        lambda d: st.dictionaries(st.text(max_size=6), values, max_size=1).map(lambda extra: extra | d))


def as_json(strategy) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))


gme_piece = fields(HitFlag=st.booleans() | st.sampled_from(["true", "false"]), MainType=st.sampled_from(
    ["porn", "abuse", "normal", ""]), ScanDetail=st.lists(fields(Label=st.sampled_from(["porn", "ad", "normal"]),
                                                                 Rate=st.sampled_from(["91.5", "bad", "0"])),
                                                          max_size=2))
gme_bodies = fields(Code=st.integers(0, 2000), Status=st.sampled_from(["Start", "Success", "Error"]),
                    HitFlag=st.booleans(), Msg=st.text(max_size=8), DataId=st.text(max_size=8),
                    ScanPiece=st.lists(gme_piece, max_size=2))
shumei_segment = fields(riskLevel=st.sampled_from(["PASS", "REVIEW", "REJECT"]),
                        riskLabel1=st.sampled_from(["normal", "porn", "ad"]),
                        riskDetail=fields(audioText=st.text(max_size=8)))
shumei_bodies = fields(code=st.sampled_from([1100, 1101, 1901, 1902, 1903, 1904, 1905, 9100, 9101, 4242]),
                       requestId=st.text(max_size=8), riskLevel=st.sampled_from(["PASS", "REVIEW", "REJECT"]),
                       audioText=st.text(max_size=8), audioTime=st.integers(0, 100),
                       audioDetail=st.lists(shumei_segment, max_size=2),
                       audioTags=fields(gender=fields(label=st.text(max_size=4), probability=st.integers(0, 100)),
                                        song=st.integers(0, 1), language=st.lists(
                                            fields(label=st.integers(0, 3), confidence=st.integers(0, 100)),
                                            max_size=2)))
speech = fields(label=st.integers(0, 3) | st.sampled_from(["normal", "porn"]), review=st.booleans(),
                requestId=st.text(max_size=6))
tupu_bodies = fields(code=st.integers(-1, 2), status=st.sampled_from(["end", "closed"]), message=st.text(max_size=6),
                     **{"5c8213b9bc807806aab0a574": fields(speechs=st.lists(speech, max_size=2)),
                        "5caee6b2a76925c55a09a6d2": fields(speechs=st.lists(speech, max_size=2))})
asr_forms = fields(code=st.sampled_from(["0", "1020", "1009", "x", ""]), message=st.text(max_size=8),
                   text=st.text(max_size=8), audioTime=st.sampled_from(["2.5", "nan", "x"]))


def any_body(shaped) -> st.SearchStrategy[bytes]:
    return st.one_of(as_json(shaped), as_json(shaped), as_json(values), st.binary(max_size=64))


def assert_merges(database_url: str, answer, check_id: int) -> None:
    """A 200 stored one event (merged or ignored by one merge); a 4xx stored nothing."""
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    stored = [e for e in events(database_url) if e.check_id == check_id]
    if answer.status_code != 200:
        assert stored == []
        return
    (event,) = stored
    merge(event.id)
    (event,) = (e for e in events(database_url) if e.id == event.id)
    assert event.state in ("merged", "ignored"), (event.state, event.note)
    check = check_row(database_url, check_id)
    assert check.status in ("running", "done", "failed")
    assert check.verdict in (None, "PASS", "REVIEW", "REJECT")


@pytest.fixture
def fuzzed(receiver, redis_url, monkeypatch, caplog):
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", redis_url)  # the merge's app reads its settings
    caplog.set_level(logging.INFO)
    yield receiver
    assert hostile.log_problems(caplog.records) == []


def test_gme(fuzzed, keys):
    @FUZZ
    @given(any_body(gme_bodies))
    def run(raw: bytes) -> None:
        task_id = uuid.uuid4().hex
        check_id = make_check(fuzzed.database_url, "gme", task_id)
        data = _with(raw, TaskId=task_id)
        answer = fuzzed.gme(data, sign_callback(data, keys["gme"]))
        assert_merges(fuzzed.database_url, answer, check_id)

    run()


def test_shumei_with_token(fuzzed):
    @FUZZ
    @given(any_body(shumei_bodies), st.booleans())
    def run(raw: bytes, ours: bool) -> None:
        bt_id = "vq-" + uuid.uuid4().hex
        check_id = make_check(fuzzed.database_url, "shumei", bt_id, request_id="req-" + bt_id)
        data = _with(raw, btId=bt_id) if ours else raw
        answer = fuzzed.post(fuzzed.shumei_path(check_id), data=data)
        assert_merges(fuzzed.database_url, answer, check_id)

    run()


def test_shumei_without_token(fuzzed):
    known = make_check(fuzzed.database_url, "shumei", "vq-known", request_id="req-known")

    @FUZZ
    @given(any_body(shumei_bodies), st.sampled_from([None, "vq-known", "vq-other"]))
    def run(raw: bytes, bt_id: str | None) -> None:
        data = _with(raw, btId=bt_id) if bt_id else raw
        answer = fuzzed.post("/callbacks/shumei", data=data)
        assert answer.status_code in (200, 400), answer.status_code
        assert events(fuzzed.database_url) == []  # never stored, whatever it says

    started = time.monotonic()
    run()
    gaps = 1 + int((time.monotonic() - started) // SIGNAL_GAP_S)  # a slow machine's run may outlast one gap
    assert set(fuzzed.queried) <= {known} and len(fuzzed.queried) <= gaps  # asked once a gap: its poll is due now


def test_tupu(fuzzed, tupu_key):
    @FUZZ
    @given(any_body(tupu_bodies))
    def run(raw: bytes) -> None:
        task_id = uuid.uuid4().hex
        check_id = make_check(fuzzed.database_url, "tupu", task_id)
        text = _with(raw if _decodes(raw) else b"{}", requestId=task_id).decode("utf-8", "surrogatepass")
        signature = tupu_key.sign(text.encode("utf-8", "surrogatepass"), padding.PKCS1v15(), hashes.SHA256())
        envelope = {"json": text, "signature": base64.b64encode(signature).decode()}
        answer = fuzzed.post("/callbacks/tupu", data=json.dumps(envelope).encode())
        assert_merges(fuzzed.database_url, answer, check_id)

    run()


def test_asr(fuzzed):
    @FUZZ
    @given(st.one_of(asr_forms, st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=4)),
           st.booleans())
    def run(form: dict, as_json_body: bool) -> None:
        check_id = make_check(fuzzed.database_url, "asr", uuid.uuid4().hex)
        form = {k: v for k, v in form.items() if isinstance(k, str)}
        if as_json_body:
            answer = fuzzed.post(fuzzed.asr_path(check_id), data=json.dumps(form).encode(),
                                 headers={"Content-Type": "application/json"})
        else:
            answer = fuzzed.post(fuzzed.asr_path(check_id), data=_form(form))
        assert_merges(fuzzed.database_url, answer, check_id)

    run()


def test_any_bytes_anywhere(fuzzed):
    """Raw bytes with a wrong or missing signature or token: refused, nothing stored."""
    @FUZZ
    @given(st.binary(max_size=256), st.sampled_from(["/callbacks/gme", "/callbacks/tupu", "/callbacks/shumei",
                                                      "/callbacks/shumei/1/" + "0" * 32,
                                                      "/callbacks/asr/1/" + "0" * 32]))
    def run(raw: bytes, path: str) -> None:
        answer = fuzzed.post(path, data=raw, params={"Signatue": "AAAA"})
        assert 400 <= answer.status_code < 500 or answer.json() == {"ok": True}
        assert events(fuzzed.database_url) == []

    run()


def _with(raw: bytes, **extra) -> bytes:
    """``raw`` with ``extra`` fields when it is a JSON object (so the callback names our check)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return raw
    return json.dumps(data | extra, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _form(form: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(form, encoding="utf-8", errors="surrogatepass").encode()
