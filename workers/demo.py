"""``voxqueue demo``: the whole pipeline offline, on the bundled samples.

Starts the vendor sandbox with throw-away credentials, the webhook receiver, a
beat and a worker; ingests the samples for SOE scoring and GME, Shumei and ASR
moderation; shows progress, prints the report as a table and writes it as an HTML
page under var/reports/. Vendor endpoints and
credentials are those of the sandbox whatever the environment says, so the
demo never calls a real vendor.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from rich.text import Text

from config.broker import stop_embedded_redis
from config.settings import EMBEDDED_BROKER, get_settings, reset_settings
from workers import console
from workers.processes import free_port, running, voxqueue_command, wait_http

SAMPLES = Path(__file__).parent / "samples"
TIMEOUT_S = 180


SERVICES = ["soe", "gme", "shumei", "asr"]


def demo_env(sandbox_url: str, webhooks_url: str) -> dict[str, str]:
    """Throw-away credentials, shared by the sandbox and the pipeline; every endpoint the sandbox."""
    endpoints = {f"VOXQUEUE_{v}_ENDPOINT": sandbox_url for v in ("SOE", "GME", "SHUMEI", "TUPU", "ASR")}
    return endpoints | {
        "VOXQUEUE_TENCENT_SECRET_ID": "demo-" + secrets.token_hex(8),
        "VOXQUEUE_TENCENT_SECRET_KEY": secrets.token_hex(16),
        "VOXQUEUE_GME_BIZ_ID": "1400000000",
        "VOXQUEUE_GME_CALLBACK_KEY": secrets.token_hex(16),
        "VOXQUEUE_SHUMEI_ACCESS_KEY": secrets.token_hex(12),
        "VOXQUEUE_ASR_APPID": "1250000000",
        "VOXQUEUE_MEDIA_BASE_URL": sandbox_url + "/media",
        "VOXQUEUE_CALLBACK_BASE_URL": webhooks_url,
        "VOXQUEUE_SANDBOX_MEDIA_DIR": str(SAMPLES),
        "VOXQUEUE_SANDBOX_RESULT_DELAY_S": "1",
        "VOXQUEUE_POLL_INTERVAL": "1",
    }


def run_demo(keep: bool = False) -> int:
    from models.migrate import upgrade

    port, hooks = free_port(), free_port()
    url, hooks_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{hooks}"
    os.environ.update(demo_env(url, hooks_url))
    reset_settings()
    settings = get_settings()
    upgrade(settings.database_url)
    logs = settings.var_dir / "demo"
    env = dict(os.environ)
    console.err.print(f"[bold]voxqueue demo[/]: sandbox at {url}, webhooks at {hooks_url}, "
                      f"database {settings.database_url}, logs in {logs}/")
    with running(voxqueue_command("sandbox", "--port", str(port), "--latency-ms", "20"), env, logs / "sandbox.log") as sbx, \
         running(voxqueue_command("webhooks", "--port", str(hooks)), env, logs / "webhooks.log") as web, \
         running(voxqueue_command("beat"), env, logs / "beat.log"), \
         running(voxqueue_command("worker", "-c", "8"), env, logs / "worker.log"):
        wait_http(url + "/_sandbox/health", sbx)
        wait_http(hooks_url + "/healthz", web)
        batch = _ingest()
        ok = _wait(batch)
        _report(batch, settings.var_dir)
        if keep:
            console.err.print("--keep: press Ctrl-C to stop the sandbox and the worker")
            _sleep_forever()
    if settings.broker_url == EMBEDDED_BROKER:
        stop_embedded_redis(settings.var_dir)  # leave nothing running behind
    return 0 if ok else 1


def _ingest() -> str:
    from tasks.dispatch import enqueue
    from tasks.ingest import ingest
    from tasks.manifest import Defaults

    name = time.strftime("demo-%Y%m%d-%H%M%S")
    result = ingest(SAMPLES, batch=name, enqueue=enqueue, defaults=Defaults(services=SERVICES))
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


def _report(batch: str, var_dir: Path) -> None:
    """The table of the batch on stdout, and a page with its charts under ``var/reports/``."""
    from workers.report_table import print_report_table, terminal_console
    from workers.reporting import write_report_file

    page = var_dir / "reports" / f"{batch}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    write_report_file(page, "html", batch=batch)
    out = terminal_console()
    print_report_table(out, batch=batch, rows=max(3, out.height - 9))
    out.print(Text(f"HTML report of batch {batch}: {page.resolve()}"), style="bold", soft_wrap=True)


def _sleep_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
