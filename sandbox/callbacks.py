"""Callbacks to the customer, and the background jobs of the asynchronous vendors.

One :class:`Courier` per app (``courier_of(app)``) owns an ``aiohttp`` client session
(created on first use, on the loop) and every background job, grouped by vendor so
a reset cancels a vendor's pending results and deliveries. :meth:`Courier.deliver`
POSTs a :class:`Callback`, retrying like the vendors do: the n-th retry waits
``n × callback_retry_s`` (at most 12×), until ``accept`` likes the answer or the
attempts run out; outcomes are counted in the stats (``callbacks``, per vendor).

The run-time switch ``callback_signing`` (``/_sandbox/config``) makes signed callbacks
(GME, Tupu) ``forged`` (signed with a wrong key) or ``corrupt`` (altered after signing)
so tests can check that the receiver refuses them; see :func:`tamper`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from sandbox.core import Sandbox, sandbox_of

MAX_BACKOFF_STEPS = 12
Accept = Callable[[int, bytes], bool]


def http_200(status: int, body: bytes) -> bool:
    """GME, Shumei and Tupu: HTTP 200 means delivered."""
    return status == 200


def tamper(body: bytes) -> bytes:
    """A JSON object with one more field: still valid JSON, no longer what was signed."""
    return b'{"sandbox_tampered":true,' + body.lstrip()[1:]


@dataclass(frozen=True)
class Callback:
    url: str
    body: bytes
    content_type: str = "application/json"
    params: dict[str, str] = field(default_factory=dict)  # added to the URL's query
    attempts: int = 3
    accept: Accept = http_200


class Courier:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._session: aiohttp.ClientSession | None = None
        self._jobs: defaultdict[str, set[asyncio.Task[Any]]] = defaultdict(set)

    def client(self) -> aiohttp.ClientSession:
        """The shared client session (call on the sandbox's loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def spawn(self, group: str, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(job)
        self._jobs[group].add(task)
        task.add_done_callback(self._jobs[group].discard)
        return task

    def cancel(self, group: str) -> None:
        for task in self._jobs.pop(group, set()):
            task.cancel()

    async def close(self) -> None:
        jobs = [task for group in self._jobs.values() for task in group]
        self._jobs.clear()
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def deliver(self, vendor: str, callback: Callback) -> bool:
        """POST until accepted or out of attempts; True when delivered. Counted in the
        sandbox's stats under ``callbacks[vendor]``."""
        config = self.sandbox.config
        for attempt in range(1, callback.attempts + 1):
            if await self._attempt(callback):
                self.sandbox.stats.callback(vendor, "delivered")
                return True
            self.sandbox.stats.callback(vendor, "failed_attempts")
            if attempt < callback.attempts:
                await asyncio.sleep(config.callback_retry_s * min(attempt, MAX_BACKOFF_STEPS))
        self.sandbox.stats.callback(vendor, "gave_up")
        return False

    async def _attempt(self, callback: Callback) -> bool:
        """Did the receiver accept it? (False as well when no answer came.)"""
        timeout = aiohttp.ClientTimeout(total=self.sandbox.config.fetch_timeout_s)
        headers = {"Content-Type": callback.content_type}
        try:
            url = URL(callback.url).update_query(callback.params)
            async with self.client().post(
                url, data=callback.body, headers=headers, timeout=timeout
            ) as response:
                return callback.accept(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False


COURIER = web.AppKey("courier", Courier)


def courier_of(app: web.Application) -> Courier:
    """The app's courier, created (and closed on cleanup) on first use."""
    courier = app.get(COURIER)
    if courier is None:
        courier = app[COURIER] = Courier(sandbox_of(app))
        app.on_cleanup.append(_close)
    return courier


async def _close(app: web.Application) -> None:
    await app[COURIER].close()
