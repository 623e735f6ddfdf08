"""``voxqueue``: the command line of CONTRACT.md.

Exit status: 0 success, 1 failure or timeout, 2 usage error (a bad option, or settings that
cannot be used). Errors are one line on stderr, never a traceback, never a secret.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click

from config.settings import SERVICES, SettingsError, get_settings
from models import JobStatus
from workers import api_cli, console, options

log = logging.getLogger("voxqueue.cli")
DEFAULT_THREADS = 16  # threads per worker process, waiting on vendors: 2 cores x 16 = 32 calls
JOB_STATES = tuple(status.value for status in JobStatus)
VERDICTS = ("PASS", "REVIEW", "REJECT")  # the contract's, strictest last


class Failure(click.ClickException):
    """An error the user can act on: printed as one line, exit status 1."""

    exit_code = 1

    def show(self, file=None) -> None:
        _error(self.format_message())


def _error(message: str) -> None:
    click.echo(f"voxqueue: error: {console.visible(message)}", err=True)


def main() -> None:
    """Run the command; every error, click's usage errors included, as one line."""
    try:
        code = cli.main(prog_name="voxqueue", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `voxqueue` alone: the help, as always
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _error(exc.format_message().rstrip(".") + where)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C
        _error("interrupted")
        sys.exit(1)
    except SettingsError as exc:
        _error(str(exc))
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001  (the one place where unexpected errors become one line)
        _error(console.one_line(exc))
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """voxqueue: batch pronunciation scoring (Tencent SOE) and audio moderation on Celery."""
    console.setup_logging(get_settings())


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--batch", help="Batch name (default: the manifest's file name without extension).")
@click.option("--services", help=f"Comma-separated services for rows that name none ({','.join(SERVICES)}).")
@click.option("--ref-text", help="Reference text for rows that have none.")
@click.option("--lang", type=click.Choice(["en", "zh"]), help="Language for rows that name none.")
@click.option("--notify", "notify_url", metavar="URL", help="POST signed job.finished and batch.finished events to URL.")
def ingest(source: Path, batch, services, ref_text, lang, notify_url) -> None:
    """Record every row of SOURCE (a .csv/.jsonl manifest or a folder of audio) and enqueue it."""
    from tasks.dispatch import BrokerUnavailable, Deferred
    from tasks.ingest import IngestStopped
    from tasks.ingest import ingest as run_ingest
    from tasks.manifest import Defaults, ManifestError

    names = [s.strip() for s in services.split(",")] if services else None
    unknown = [s for s in names or [] if s not in SERVICES]
    if unknown:
        raise click.UsageError(f"unknown service {', '.join(unknown)} (known: {', '.join(SERVICES)})")
    defaults = Defaults(services=names, ref_text=ref_text, lang=lang)
    on_batch, notify_secrets = api_cli.attach_notify(notify_url)
    send = Deferred()  # a broker outage does not stop the recording: what it refused is sent at the end
    stopped: IngestStopped | None = None
    try:
        with console.row_progress("ingesting") as advance:
            result = run_ingest(source, batch=batch, defaults=defaults, enqueue=send, progress=advance,
                                on_batch=on_batch)
    except ManifestError as exc:
        raise Failure(str(exc)) from exc
    except IngestStopped as exc:  # part-way: what was recorded is still sent, then why it stopped
        stopped, result = exc, exc.result
    unsent: BrokerUnavailable | None = None
    try:
        send.flush()
    except BrokerUnavailable as exc:
        unsent = exc
    for secret in notify_secrets:  # a URL new to voxqueue: its signing secret, this once
        click.echo(f"notifications to {console.visible(notify_url)} are signed with {secret} (shown once)")
    for key, reason in result.rejections:
        click.echo(console.visible(f"rejected {key}: {reason}"), err=True)
    queued = len(result.to_enqueue) + result.requeued - len(send.unsent)
    if stopped is not None:
        raise Failure(f"{console.one_line(stopped.__cause__)}; {stopped.message(queued)}") from stopped
    existing = ""
    if result.existing:
        existing = f", {result.existing} already recorded" + (
            f" ({result.requeued} of their checks not started: queued again)" if result.requeued else "")
    click.echo(console.visible(f"batch {result.batch}: {result.accepted} accepted, {result.rejected} rejected")
               + f"{existing}; {result.recorded} jobs recorded, {queued} checks queued")
    if unsent is not None:
        raise Failure(f"{len(send.unsent)} check(s) recorded but not queued: {unsent}; the workers' housekeeping "
                      f"queues them when the broker is back, or run this command again")


@cli.command()
@click.option("-Q", "--queues", default=None, help="Comma-separated queues (default: all).")
@click.option("--processes", type=options.THREADS, default=None,
              help="Worker processes, each with -c threads (default: one per core).")
@click.option("-c", "--concurrency", type=options.THREADS, default=DEFAULT_THREADS,
              show_default=True, help="Threads per worker process.")
@click.option("--pool", default="threads", show_default=True, help="Celery pool (threads suits vendor I/O).")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--events/--no-events", default=False, show_default=True,
              help="Send task events always (by default only while Flower asks for them).")
@click.option("-n", "--hostname", default=None,
              help="Celery node name (default celery@HOST; processes: voxqueue-PID-I@HOST).")
def worker(queues, processes, concurrency, pool, loglevel, events, hostname) -> None:
    """Run Celery workers: --processes processes (one per core by default), -c threads each."""
    from workers.supervisor import Supervisor, default_processes, watch_parent

    processes = processes or default_processes()
    if processes == 1:
        watch_parent()
        _run_worker(queues, concurrency, pool, loglevel, events, hostname)
        return

    def command(index: int) -> list[str]:
        from workers.processes import voxqueue_command

        node, at, host = (hostname or f"voxqueue-{os.getpid()}@%h").partition("@")
        name = f"{node}-{index}{at}{host}"
        return voxqueue_command("worker", "--processes", "1", "-c", str(concurrency),
                                "--pool", pool, "--loglevel", loglevel, "-n", name,
                                *(["-Q", queues] if queues else []),
                                *(["--events"] if events else []))

    log.info("starting %d worker processes x %d threads", processes, concurrency)
    supervisor = Supervisor(command, processes)
    if supervisor.run() != 0:
        raise Failure(supervisor.failed or "a worker process failed")


def _run_worker(queues, concurrency, pool, loglevel, events, hostname) -> None:
    """One Celery worker in this process."""
    from config.celery import QUEUES
    from config.settings import reset_settings
    from workers.app import app

    os.environ.setdefault("VOXQUEUE_DB_POOL_SIZE", str(concurrency))  # a connection per thread
    reset_settings()
    argv = ["worker", "-P", pool, "-c", str(concurrency), "--loglevel", loglevel,
            "-Q", queues or ",".join(QUEUES), "--without-gossip", "--without-mingle"] + (["-E"] if events else [])
    if hostname:
        argv += ["-n", hostname]
    app.worker_main(argv)


@cli.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel) -> None:
    """Run the Celery beat that drives polling and housekeeping."""
    from workers.app import app

    # RedBeat keeps the schedule in Redis behind a lock: a second beat waits instead of doubling;
    # workers.beat's scheduler takes the lock again after a broker restart instead of exiting.
    app.start(["beat", "-S", "workers.beat:Scheduler", "--loglevel", loglevel])


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=options.PORT, default=8700, show_default=True)
@click.option("--latency-ms", type=options.Number(), default=None, help="Added latency per vendor call.")
@click.option("--faults", default=None, callback=options.faults,
              help='JSON list of fault rules, e.g. [{"kind":"throttle","rate":0.2}].')
@click.option("--seed", type=int, default=None, help="Seed for fault decisions.")
@click.option("--media", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Serve this folder at /media/ (a stand-in for VOXQUEUE_MEDIA_BASE_URL).")
def sandbox(host, port, latency_ms, faults, seed, media) -> None:
    """Run the local emulator of all five vendor APIs."""
    from sandbox.server import run

    config = options.sandbox_config()
    if latency_ms is not None:
        config.latency_ms = latency_ms
    if faults is not None:
        config.faults = faults
    if seed is not None:
        config.seed = seed
    if media is not None:
        config.media_dir = str(media)
    run(host, port, config)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=options.PORT, default=8080, show_default=True)
def webhooks(host, port) -> None:
    """Run the HTTP receiver for vendor callbacks."""
    from workers.webhooks import run

    run(host, port)


@cli.command()
@click.option("--batch", help="Only this batch.")
def status(batch) -> None:
    """Counts of jobs and vendor checks by state."""
    from models.db import session_scope
    from models.stats import batch_names, counts

    with session_scope() as session:
        names = [batch] if batch is not None else batch_names(session)
        found = [c for c in (counts(session, n) for n in names) if c is not None]
    if batch is not None and not found:
        raise Failure(f"no batch named {batch!r}")
    console.print_status(found)
    for line in _held_lines() or []:
        click.echo(console.visible(line))


def _held_lines() -> list[str] | None:
    """The shared limits holding work back now (tasks.ratelimit); None when the broker does not
    answer (status and wait are the database's: a broker away must not stop them)."""
    import redis

    from config.broker import embedded_running
    from config.settings import EMBEDDED_BROKER
    from tasks.ratelimit import held_lines

    settings = get_settings()
    if settings.broker_url == EMBEDDED_BROKER and not embedded_running(settings.var_dir):
        return []  # nothing can be held by a broker that is not running: do not start one to ask
    try:
        return held_lines()
    except (redis.RedisError, OSError):
        return None


@cli.command()
@click.option("--batch", required=True, help="The batch to wait for.")
@click.option("--timeout", type=options.SECONDS, default=None,
              help="Give up after S seconds (exit 1); 0 checks once.")
def wait(batch, timeout) -> None:
    """Show progress until every job of the batch is terminal."""
    from models.db import session_scope
    from models.stats import counts

    deadline = None if timeout is None else time.monotonic() + timeout
    held: list[str] = []
    held_at = 0.0
    with console.batch_progress(batch) as show:
        while True:
            with session_scope() as session:
                current = counts(session, batch)
            if current is None:
                raise Failure(f"no batch named {batch!r}")
            if time.monotonic() >= held_at and current.terminal < current.total:
                found = _held_lines()  # every 2 s; 30 s after the broker did not answer
                held, held_at = found or [], time.monotonic() + (2.0 if found is not None else 30.0)
            show(current, held)
            if current.terminal >= current.total:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Failure(f"timed out after {timeout:g}s: {current.terminal}/{current.total} jobs terminal")
            time.sleep(0.5 if left is None else min(0.5, left))
    click.echo(console.summary_line(current))


@cli.command()
@click.option("--batch", help="Only this batch.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html"]), default=None,
              help="json (the default piped or with --output), csv, or html (a page with charts). "
                   "On a terminal without it: a table of the first jobs.")
@click.option("--output", type=click.Path(path_type=Path),
              help="Write to FILE instead of stdout (replaced only by a complete report).")
@click.option("--status", "status_filter", type=click.Choice(JOB_STATES, case_sensitive=False),
              help="Only jobs with this status.")
@click.option("--verdict", type=click.Choice(VERDICTS, case_sensitive=False), help="Only jobs with this verdict.")
def report(batch, fmt, output, status_filter, verdict) -> None:
    """The outcomes, one record per job in ingestion order."""
    from models.db import session_scope
    from models.stats import batch_names
    from workers.reporting import write_report, write_report_file

    to_terminal = output is None and sys.stdout.isatty()
    if fmt == "html" and to_terminal:
        raise click.UsageError("--format html writes a page: add --output FILE (e.g. report.html)")
    if batch is not None:
        with session_scope() as session:
            if batch not in batch_names(session):
                raise Failure(f"no batch named {batch!r}")
    filters = {"batch": batch, "status": status_filter, "verdict": verdict}
    if fmt is None and to_terminal:
        from workers.report_table import print_report_table, terminal_console

        print_report_table(terminal_console(), **filters)
        return
    fmt = fmt or "json"
    if output is None:
        write_report(sys.stdout, fmt, **filters)
        return
    try:
        write_report_file(output, fmt, **filters)
    except OSError as exc:
        raise Failure(f"{output}: {exc.strerror or exc}") from exc


@cli.command()
@click.option("--batch", help="Only this batch.")
@click.option("--service", type=click.Choice(SERVICES), help="Only this service.")
def retry(batch, service) -> None:
    """Re-enqueue failed work."""
    from tasks.retry import UnknownBatch, retry_failed

    try:
        count = retry_failed(batch=batch, service=service)
    except UnknownBatch as exc:
        raise Failure(str(exc)) from exc
    click.echo(f"re-enqueued {count} failed check(s)")


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    from models.migrate import upgrade

    upgrade(get_settings().database_url)
    click.echo("database is up to date")


@cli.command()
@click.option("--port", type=options.PORT, default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
def flower(port, address) -> None:
    """Run the Flower dashboard against the configured broker.

    Bound to a loopback address, Flower's HTTP API is enabled without authentication;
    elsewhere configure Flower's own auth (FLOWER_BASIC_AUTH, ...) to use the API.
    Workers send task events while Flower runs: it asks them to at start and every few seconds.
    """
    import os

    from workers.app import app

    if address in ("127.0.0.1", "localhost", "::1"):
        os.environ.setdefault("FLOWER_UNAUTHENTICATED_API", "true")
    app.control.enable_events()  # now: Flower itself asks again only every few seconds
    app.start(["flower", f"--port={port}", f"--address={address}"])


@cli.group()
def stream() -> None:
    """Live-stream jobs."""


@stream.command("close")
@click.argument("job_id")
@click.option("--batch", help="The batch of the job, where the id is in several.")
def stream_close(job_id, batch) -> None:
    """End the live-stream job ID (Tupu close API): its verdict once Tupu's end callback
    has come, else that it is closing, with the verdict so far."""
    from tasks.streams import StreamError, close

    try:
        closed = close(job_id, batch)
    except StreamError as exc:
        raise Failure(str(exc)) from exc
    click.echo(closed.line(job_id))


@cli.command()
@click.option("--keep", is_flag=True, help="Leave the sandbox and worker running afterwards.")
def demo(keep) -> None:
    """Run the whole pipeline on the bundled samples, offline (what `make demo` runs)."""
    from workers.demo import run_demo

    sys.exit(run_demo(keep=keep))


cli.add_command(api_cli.api)
cli.add_command(api_cli.notify)


if __name__ == "__main__":  # pragma: no cover
    main()
