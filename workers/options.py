"""Values the command line takes, checked before anything runs: a number that cannot mean a
duration, a rate or a port is a usage error (exit 2), not a wait that never ends."""

from __future__ import annotations

import math
import os
from typing import Any

import click

from config.settings import SettingsError
from workers.console import one_line, parse_faults

PORT = click.IntRange(0, 65535)  # 0: any free port (the sandbox prints the one it took)
THREADS = click.IntRange(min=1)


class Number(click.ParamType):
    """A finite number of at least ``low``: nan passes every comparison and inf never comes."""

    name = "number"

    def __init__(self, low: float = 0.0) -> None:
        self.low = low

    def check(self, value: Any) -> float:
        """The number, or ValueError saying what it must be (never quoting it: see SettingsError)."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number") from None
        if not math.isfinite(number) or number < self.low:
            raise ValueError(f"must be a finite number of at least {self.low:g}")
        return number

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            return self.check(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SECONDS = Number()


def faults(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list | None:
    """``--faults``: a JSON list of fault rules, read before the sandbox starts."""
    if value is None:
        return None
    try:
        return parse_faults(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("must be an integer") from None


# The sandbox's own variables (sandbox.server.config_from_env), and how each is checked.
SANDBOX_VARIABLES = {
    "VOXQUEUE_SANDBOX_LATENCY_MS": SECONDS.check,
    "VOXQUEUE_SANDBOX_RESULT_DELAY_S": SECONDS.check,
    "VOXQUEUE_SANDBOX_SEED": _integer,
    "VOXQUEUE_SANDBOX_FAULTS": parse_faults,
}


def sandbox_config() -> Any:
    """The sandbox's configuration from the environment; a variable it cannot use is a
    :class:`SettingsError` that names it."""
    from sandbox.server import config_from_env

    for name, check in SANDBOX_VARIABLES.items():
        value = os.environ.get(name)
        if value:
            try:
                check(value)
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from None
    try:
        return config_from_env()
    except (ValueError, TypeError, OSError) as exc:  # a key file missing or not PEM, ...
        raise SettingsError(f"sandbox settings: {one_line(exc)}") from None
