"""``voxqueue beat``'s scheduler: RedBeat that outlives a broker restart.

RedBeat keeps the schedule in Redis behind a lock, so two beats started by
mistake poll as one. As shipped, a beat whose lock vanished (the broker
restarted without its data) or whose broker went away for a moment raises out
of its loop and exits, and nothing polls until someone starts it again. This
scheduler treats both as a pause: it stops sending, waits for the broker, takes
the lock again (or stands by while another beat holds it), stores its schedule
again (it went with the broker's data), and goes on.
"""

from __future__ import annotations

import logging

import redis
from celery.signals import beat_init
from redbeat.schedulers import (
    LUA_EXTEND_TO_SCRIPT,
    RedBeatScheduler,
    acquire_distributed_beat_lock,
    get_redis,
)

log = logging.getLogger("voxqueue.beat")
# RedBeat takes its lock when the beat starts and, when the broker is away then, logs a traceback
# and leaves the lock unset; Scheduler.tick takes it (and waits for it) instead.
beat_init.disconnect(acquire_distributed_beat_lock)

RETRY_S = 1.0  # between attempts to reach the broker or the lock


class Scheduler(RedBeatScheduler):
    _failing = False
    _stored = False  # the schedule is in the broker (it goes with the broker's data)

    def setup_schedule(self) -> None:
        """Store the schedule in the broker; a broker that is away (also when the beat starts) is
        said once, and the schedule is stored when it answers."""
        try:
            super().setup_schedule()
        except redis.RedisError as exc:
            self._stored = False
            self._say("beat: the broker is unreachable (%s: %s); trying again", exc)
        else:
            self._stored = True

    def tick(self, *args, **kwargs) -> float:
        if self.lock_key and self.lock is None and not self._take_lock():
            return RETRY_S
        if not self._stored:
            self.setup_schedule()
            if not self._stored:
                return RETRY_S
        try:
            interval = super().tick(*args, **kwargs)
        except redis.RedisError as exc:  # LockError included: the lock is gone or another beat's
            self._say("beat: lost the broker or its lock (%s: %s); taking it again", exc)
            self.lock, self._stored = None, False
            return RETRY_S
        if self._failing:
            log.info("beat: the broker answers again")
            self._failing = False
        return interval

    def _take_lock(self) -> bool:
        """Take the lock (waiting up to a loop interval for another beat to let it go), then store
        the schedule again; False while the broker is away or another beat holds the lock."""
        try:
            client = get_redis(self.app)
            lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=0.5,
                               blocking_timeout=self.max_interval)
            lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)  # as redbeat's own lock
            if not lock.acquire():
                return False  # another beat polls: stand by
        except redis.RedisError as exc:
            self._say("beat: the broker is unreachable (%s: %s); trying again", exc)
            return False
        self.lock = lock
        self._stored = False  # stored again under the lock: it may have gone with the broker's data
        log.info("beat: lock taken")
        return True

    def _say(self, message: str, exc: Exception) -> None:
        if not self._failing:  # once per outage, not once a second
            log.warning(message, type(exc).__name__, str(exc)[:200])
        self._failing = True

    def close(self) -> None:
        try:
            super().close()
        except redis.RedisError:  # stopping while the broker is away: the lock expires on its own
            self.lock = None
