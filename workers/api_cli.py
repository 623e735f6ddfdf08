"""``voxqueue api`` (the producers' API and its tokens) and ``voxqueue notify`` (outbound events)."""

from __future__ import annotations

import click

from models import NotificationState
from workers import console, options

STATES = (NotificationState.PENDING, NotificationState.DELIVERED, NotificationState.DEAD)


class Failure(click.ClickException):
    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"voxqueue: error: {console.visible(self.format_message())}", err=True)


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=options.PORT, default=8800, show_default=True)
@click.pass_context
def api(ctx: click.Context, host: str, port: int) -> None:
    """Run the producers' HTTP API (OpenAPI at /v1/openapi.json); `api token` manages its tokens."""
    if ctx.invoked_subcommand is None:
        from workers.api import run

        run(host, port)


@api.group()
def token() -> None:
    """Bearer tokens for the API."""


@token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Make a token for NAME and print it (once: only its digest is stored)."""
    from tasks.tokens import TokenError, create

    try:
        value = create(name)
    except TokenError as exc:
        raise Failure(str(exc)) from exc
    click.echo(value)
    click.echo(f"token {name} created: keep it now, it is not shown again", err=True)


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke NAME's token: every request with it gets 401 from now on."""
    from tasks.tokens import TokenError, revoke

    try:
        revoke(name)
    except TokenError as exc:
        raise Failure(str(exc)) from exc
    click.echo(f"token {name} revoked")


@click.group()
def notify() -> None:
    """Outbound notifications: job.finished and batch.finished events."""


@notify.command("status")
@click.option("--batch", help="Only this batch.")
@click.option("--state", type=click.Choice(STATES), help="Only deliveries in this state.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Latest deliveries listed.")
def notify_status(batch, state, limit) -> None:
    """Deliveries by state, and the latest ones."""
    from tasks.notify import by_state, listed

    found = by_state(batch)
    click.echo("notifications: " + ", ".join(f"{found.get(s, 0)} {s}" for s in STATES))
    for row, batch_name in listed(batch, state, limit):
        outcome = f"HTTP {row.last_status}" if row.last_status else (row.last_error or "-")
        when = f"next {row.next_attempt_at:%Y-%m-%d %H:%M:%S}" if row.state == NotificationState.PENDING else ""
        click.echo(console.visible(
            f"{row.event_id}  {row.type:<14} {row.state:<9} batch {batch_name}  attempts {row.attempts}  "
            f"last {outcome}  {when}".rstrip()))


@notify.command("retry")
@click.option("--batch", help="Only this batch.")
@click.option("--id", "event_id", help="Only this event.")
def notify_retry(batch, event_id) -> None:
    """Send dead deliveries again (and those waiting for a retry, now)."""
    from tasks.notify import retry

    count = retry(batch, event_id)
    click.echo(f"{count} notification(s) to send again (the beat's next round sends them)")


def attach_notify(url: str | None):
    """``ingest --notify URL``: the callback that makes URL the batch's, and a list that gets
    the URL's secret when it is new (to print once)."""
    if url is None:
        return None, []
    from config.settings import notify_url_problem

    problem = notify_url_problem(url)
    if problem:
        raise click.BadParameter(problem, param_hint="'--notify'")
    secrets: list[str] = []

    def on_batch(session, batch) -> None:
        from tasks.outbox import CLI_OWNER, attach

        attached = attach(session, batch, CLI_OWNER, url)
        if attached.secret:
            secrets.append(attached.secret)

    return on_batch, secrets
