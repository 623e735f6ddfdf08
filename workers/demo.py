"""``voxqueue demo``: the whole pipeline offline, on the bundled samples.

Starts the vendor sandbox with throw-away credentials and a worker, ingests the
samples, shows progress and prints the report. Vendor endpoints and
credentials are those of the sandbox whatever the environment says, so the
demo never calls a real vendor.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

from config.broker import stop_embedded_redis
from config.settings import EMBEDDED_BROKER, get_settings, reset_settings
from workers import console
from workers.processes import free_port, running, voxqueue_command, wait_http

SAMPLES = Path(__file__).parent / "samples"
TIMEOUT_S = 180


def demo_env(sandbox_url: str) -> dict[str, str]:
    return {
        "VOXQUEUE_TENCENT_SECRET_ID": "demo-" + secrets.token_hex(8),
        "VOXQUEUE_TENCENT_SECRET_KEY": secrets.token_hex(16),
        "VOXQUEUE_SOE_ENDPOINT": sandbox_url,
        "VOXQUEUE_GME_ENDPOINT": sandbox_url,
        "VOXQUEUE_SHUMEI_ENDPOINT": sandbox_url,
        "VOXQUEUE_TUPU_ENDPOINT": sandbox_url,
        "VOXQUEUE_ASR_ENDPOINT": sandbox_url,
    }


def run_demo(keep: bool = False) -> int:
    from models.migrate import upgrade

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ.update(demo_env(url))
    reset_settings()
    settings = get_settings()
    upgrade(settings.database_url)
    logs = settings.var_dir / "demo"
    env = dict(os.environ)
    console.err.print(f"[bold]voxqueue demo[/]: sandbox at {url}, database {settings.database_url}, logs in {logs}/")
    with running(voxqueue_command("sandbox", "--port", str(port), "--latency-ms", "20"), env, logs / "sandbox.log") as sbx, \
         running(voxqueue_command("worker", "-c", "4"), env, logs / "worker.log"):
        wait_http(url + "/_sandbox/health", sbx)
        batch = _ingest()
        ok = _wait(batch)
        _report(batch)
        if keep:
            console.err.print("--keep: press Ctrl-C to stop the sandbox and the worker")
            _sleep_forever()
    if settings.broker_url == EMBEDDED_BROKER:
        stop_embedded_redis(settings.var_dir)  # leave nothing running behind
    return 0 if ok else 1


def _ingest() -> str:
    from tasks.dispatch import enqueue
    from tasks.ingest import ingest

    name = time.strftime("demo-%Y%m%d-%H%M%S")
    result = ingest(SAMPLES, batch=name, enqueue=enqueue)
    console.err.print(f"batch {name}: {result.accepted} accepted, {result.rejected} rejected")
    return name


def _wait(batch: str) -> bool:
    from models.db import session_scope
    from models.stats import counts

    deadline = time.monotonic() + TIMEOUT_S
    with console.batch_progress(batch) as show:
        while time.monotonic() < deadline:
            with session_scope() as session:
                current = counts(session, batch)
            show(current)
            if current.terminal >= current.total:
                return current.jobs.get("done", 0) == current.total
            time.sleep(0.3)
    console.err.print(f"timed out after {TIMEOUT_S}s")
    return False


def _report(batch: str) -> None:
    from workers.reporting import write_report

    write_report(sys.stdout, "json", batch=batch)


def _sleep_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
