"""kombu's Redis transport, with one client object per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` object for every command it
sends outside its consuming connection: each publish, each acknowledgement, each
prefetch bookkeeping step and each Flower event. Building one costs about
0.2 ms of CPU in redis-py 6+ (it fills a table of ~250 response callbacks),
several times per task, in the process that also runs the tasks. A
``redis.Redis`` object is safe to share between threads (every command checks a
connection out of the pool), so the channel keeps one per connection pool, and
makes a new one when kombu replaces the pool (after a fork or a lost connection).

:func:`install` registers it under the ``redis://`` and ``rediss://`` schemes
before the first connection is made (``tasks.app``).
"""

from __future__ import annotations

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        try:
            if asynchronous:  # the consuming connection's own client (BRPOP, LISTEN): as kombu does
                return super()._create_client(asynchronous=True)
            client = self._shared_client
            if client is None or client.connection_pool is not self.pool:
                client = self._shared_client = super()._create_client()
            return client
        except AttributeError as exc:
            # A channel closed a second time after its connection was torn down (a broker crash:
            # Celery collects the connection, then closes it) rebuilds its pool from the
            # connection, which is gone; kombu's own client raises AttributeError there, which
            # nothing expects and which ended the worker ("Unrecoverable error"). A connection
            # error is what the closing code ignores; the consumer then reconnects.
            raise redis.ConnectionError("the broker connection is closed") from exc


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
