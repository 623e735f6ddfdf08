"""The worker's log says when a shared rate limit holds work back: once a minute per host.

Every :data:`CHECK_S` seconds a thread of each worker process reads the shared limits
(:func:`tasks.ratelimit.limit_states`); while one is saturated, the first process on the host to
see it in a minute logs ``shared rate limit holding work back: soe: 46 req/s, held by
VOXQUEUE_SOE_QPS=50`` (a key in Redis per host, 60 s long, so N processes log one line).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import ClassVar

import redis

log = logging.getLogger("voxqueue.ratelimit")

CHECK_S = 10.0
EVERY_S = 60  # one line per host in this long
LOGGED = "voxqueue:rate:logged:"


class LimitLog:
    running: ClassVar[LimitLog | None] = None

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="voxqueue-limit-log", daemon=True)

    @classmethod
    def start(cls, client: redis.Redis) -> LimitLog:
        cls.stop_running()
        cls.running = keeper = cls(client)
        keeper.thread.start()
        return keeper

    @classmethod
    def stop_running(cls) -> None:
        keeper, cls.running = cls.running, None
        if keeper is not None:
            keeper._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(CHECK_S):
            try:
                self.check()
            except redis.RedisError:
                pass  # the broker is away: the heartbeat and the consumer say so

    def check(self) -> bool:
        """Log the saturated limits if none was logged on this host in the last minute."""
        from tasks.ratelimit import held_lines

        lines = held_lines(self.client)
        if not lines:
            return False
        if not self.client.set(LOGGED + socket.gethostname(), "1", nx=True, ex=EVERY_S):
            return False
        log.warning("shared rate limit holding work back: %s", "; ".join(lines))
        return True
