"""A client's ``before_send`` hook (a rate-limit slot in the tasks) runs once per request, after
the request is built and signed and before it leaves; what it raises stops the request."""

from __future__ import annotations

import pytest

from tests.vendors.test_soe import CREDS, FakePost
from vendors.soe import SoeClient, SoeParams


def test_the_hook_runs_once_per_request_after_signing_and_before_the_post():
    events: list[str] = []
    post = FakePost({"SessionId": "s", "Status": "Evaluating"})
    recording = lambda *a, **kw: (events.append("post"), post(*a, **kw))[1]
    clock = lambda: (events.append("signed"), 1_700_000_000)[1]  # the signer reads the clock
    client = SoeClient(
        "https://soe.tencentcloudapi.com",
        CREDS,
        post=recording,
        clock=clock,
        before_send=lambda: events.append("slot"),
    )
    client.transmit_with_init("s", 1, False, b"\0\0" * 8, SoeParams(ref_text="red"))
    client.transmit_with_init("s", 2, False, b"\0\0" * 8, SoeParams(ref_text="red"))
    assert events == ["signed", "slot", "post"] * 2


def test_what_the_hook_raises_stops_the_request():
    post = FakePost()

    class Saturated(Exception):
        pass

    def refuse():
        raise Saturated

    client = SoeClient("https://soe.tencentcloudapi.com", CREDS, post=post, before_send=refuse)
    with pytest.raises(Saturated):
        client.transmit_with_init("s", 1, False, b"\0\0" * 8, SoeParams(ref_text="red"))
    assert post.calls == []
