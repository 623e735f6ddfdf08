"""The report over HTTP, streamed: the command's own writer, in a thread, feeding the response.

:func:`workers.reporting.write_report` reads the jobs a page at a time and writes text; here it
writes into a bounded queue that the response drains, so the whole report is never in memory
and a slow client slows the reader rather than filling memory. A client that goes away stops
the reader at its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Executor

from aiohttp import web

from workers.reporting import write_report

log = logging.getLogger("voxqueue.api")
FLUSH_CHARS = 64 * 1024
QUEUE_CHUNKS = 8
PUT_TIMEOUT_S = 60.0


class _Gone(Exception):
    """The client stopped reading."""


class _QueueWriter:
    """A text file whose writes go, in pieces of about FLUSH_CHARS, to an asyncio queue."""

    def __init__(self, queue: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
        self.queue, self.loop = queue, loop
        self.parts: list[str] = []
        self.size = 0
        self.gone = False

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= FLUSH_CHARS:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.gone:
            raise _Gone
        data = "".join(self.parts).encode()
        self.parts, self.size = [], 0
        if data:
            self._put(data)

    def _put(self, item: bytes | None) -> None:
        asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop).result(PUT_TIMEOUT_S)


async def stream_report(request: web.Request, executor: Executor, batch: str, fmt: str,
                        content_type: str) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    out = _QueueWriter(queue, loop)

    def produce() -> None:
        try:
            write_report(out, fmt, batch=batch)
            out.flush()
        finally:
            with contextlib.suppress(Exception):
                out._put(None)

    reader = loop.run_in_executor(executor, produce)
    first = await queue.get()  # a database that fails does so before the status is sent
    if first is None:
        await reader  # raises what the reader raised
    response = web.StreamResponse(headers={"Content-Type": f"{content_type}; charset=utf-8"})
    await response.prepare(request)
    try:
        chunk = first
        while chunk is not None:
            await response.write(chunk)
            chunk = await queue.get()
    except (ConnectionError, asyncio.CancelledError):
        out.gone = True
        while not reader.done():  # let a blocked put finish, so the reader sees it is gone
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.sleep(0.01)
        raise
    try:
        await reader
    except Exception as exc:  # noqa: BLE001  (the status is sent: the client sees the body cut short)
        log.error("report stopped part-way: %s", type(exc).__name__)
        response.force_close()
        return response
    await response.write_eof()
    return response
