"""Shared machinery of the vendor sandbox: settings, faults, counters, services, the app.

Each vendor module contributes a :class:`VendorService`; :func:`create_app` wires
them behind one fault/latency middleware and adds the control API under
``/_sandbox/`` (see :mod:`sandbox.control`). To add a vendor, write its module
and add its class to the list in :func:`_default_services` (import + entry).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from aiohttp import web

from sandbox.stats import PeakRate, Stats, peak_in_window  # noqa: F401  (part of this module's API)

FAULT_KINDS = ("throttle", "error5xx", "drop", "drop_after", "slow", "overload", "code")
MAX_BODY_BYTES = 32 * 1024 * 1024  # Shumei RAW audio is base64 of up to 15 MB


def _codes(value: Any) -> bool:
    """A non-empty code, or a non-empty list of them."""
    items = [value] if isinstance(value, str) else value
    return isinstance(items, list) and bool(items) and all(
        isinstance(c, str) and c.strip() for c in items
    )


@dataclass
class FaultRule:
    """Inject ``kind`` into a share ``rate`` of the requests that match ``service``/``action``.

    ``kind`` "code" answers as the vendor does with an API error ``code`` (HTTP 200 and
    the TC3 error envelope; Tencent products only, others answer HTTP 503): any code of
    the SDKs' lists, or a list of codes to draw one from per fault.
    """

    kind: str
    rate: float = 1.0
    service: str | None = None  # None: every vendor
    action: str | None = None  # None: every endpoint of the vendor
    first_n: int | None = None  # only the first n matching requests are eligible
    slow_ms: float = 0
    code: str | list[str] | None = None  # kind "code" only

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, got {self.rate}")
        if (self.kind == "code") != (self.code is not None):
            raise ValueError('a fault has a "code" exactly when its kind is "code"')
        if self.code is not None and not _codes(self.code):
            raise ValueError(f"code must be an error code or a list of them, got {self.code!r}")

    @property
    def codes(self) -> list[str]:
        return [self.code] if isinstance(self.code, str) else list(self.code or [])

    def matches(self, vendor: str, action: str) -> bool:
        return self.service in (None, vendor) and self.action in (None, action)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


@dataclass
class SandboxConfig:
    """Everything the sandbox needs; the run-time part can be replaced via ``/_sandbox/config``."""

    tencent_secret_id: str = ""
    tencent_secret_key: str = field(default="", repr=False)
    tencent_token: str | None = field(default=None, repr=False)  # None: no token required
    latency_ms: float = 0  # added to every vendor call
    soe_session_ttl_s: float = 600  # a session without a chunk this long expires; a result is kept as long
    # Longest audio per EvalMode (word, sentence: 60 s; paragraph, free: 300 s): AudioLimitExceeded.
    soe_audio_limits_s: dict[str, float] = field(
        default_factory=lambda: {"0": 60.0, "1": 60.0, "2": 300.0, "3": 300.0})
    clock_skew_s: float = 300  # accepted |now - X-TC-Timestamp|
    seed: int | None = None
    faults: list[FaultRule] = field(default_factory=list)
    # Other vendors, read by their own modules.
    result_delay_s: float = 0  # how long asynchronous vendors take before a result is ready
    shumei_access_key: str | None = field(default=None, repr=False)
    tupu_secret_id: str | None = None
    tupu_client_public_key: str | None = None  # PEM: verifies our request signatures
    tupu_server_private_key: str | None = field(default=None, repr=False)  # PEM: signs answers
    asr_appid: str | None = None
    asr_secret_id: str | None = None
    asr_secret_key: str | None = field(default=None, repr=False)
    gme_biz_id: int | None = None
    gme_callback_key: str | None = field(default=None, repr=False)
    # Moderation vendors (sandbox.gme, .shumei, .tupu, .asr, .media, .callbacks).
    media_dir: str | None = None  # served at /media/ (not a vendor route: no faults)
    fetch_timeout_s: float = 10.0  # a vendor downloading a media URL
    callback_signing: str = "valid"  # "valid" | "forged" (wrong key) | "corrupt" (body altered)
    callback_retry_s: float = 1.0  # the n-th callback retry waits n times this (capped at 12x)
    tupu_stream_duration_s: float = 5.0  # a stream that is never closed ends by itself
    # A stream closed before its result: None sends none; a number of seconds judges the audio
    # already pulled and sends its result that long after the close answer, before the end.
    tupu_result_after_close_s: float | None = None
    shumei_raw_max_bytes: int = 6 * 1024 * 1024  # base64 RAW content (the seed's 6 MB)
    shumei_download_failure: int = 1904  # a failed download: code 1904, or 2003 (auxInfo, code 1100)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # fault rules may be given as dicts (JSON)
        self.faults = [
            f if isinstance(f, FaultRule) else FaultRule.from_dict(f) for f in self.faults
        ]
        _signing_mode(self.callback_signing)


def _rules(items: list[dict[str, Any]]) -> list[FaultRule]:
    return [FaultRule.from_dict(item) for item in items]


def _seed(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _seconds_by_mode(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("soe_audio_limits_s must be an object of EvalMode: seconds")
    return {str(mode): float(seconds) for mode, seconds in value.items()}


SIGNING_MODES = ("valid", "forged", "corrupt")


def _signing_mode(value: Any) -> str:
    if value not in SIGNING_MODES:
        raise ValueError(f"callback_signing must be one of {SIGNING_MODES}, got {value!r}")
    return str(value)


def _one_of(value: Any, allowed: tuple, name: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


# What ``/_sandbox/config`` may replace, each with its converter.
RUNTIME_FIELDS: dict[str, Callable[[Any], Any]] = {
    "latency_ms": float,
    "faults": _rules,
    "seed": _seed,
    "soe_session_ttl_s": float,
    "soe_audio_limits_s": _seconds_by_mode,
    "clock_skew_s": float,
    "result_delay_s": float,
    "callback_signing": _signing_mode,
    "callback_retry_s": float,
    "fetch_timeout_s": float,
    "tupu_stream_duration_s": float,
    "tupu_result_after_close_s": _optional_seconds,
    "shumei_download_failure": lambda value: _one_of(int(value), (1904, 2003), "shumei_download_failure"),
}


class FaultPlan:
    """Seeded decisions: which request gets which fault."""

    def __init__(self, rules: list[FaultRule], seed: int | None) -> None:
        self.rules = list(rules)
        self.rng = random.Random(seed)
        self.matched = [0] * len(self.rules)

    def pick(self, vendor: str, action: str) -> FaultRule | None:
        """Count the request against every matching rule; return the first rule that fires."""
        chosen = None
        for i, rule in enumerate(self.rules):
            if not rule.matches(vendor, action):
                continue
            self.matched[i] += 1
            if rule.first_n is not None and self.matched[i] > rule.first_n:
                continue
            if self.rng.random() < rule.rate and chosen is None:
                chosen = rule
        return chosen

    def code(self, rule: FaultRule) -> str:
        """The code a "code" fault answers with (drawn by the seeded generator from a list)."""
        codes = rule.codes
        return codes[0] if len(codes) == 1 else self.rng.choice(codes)


class RouteOwner(Protocol):
    """What the middleware needs from whoever answers a vendor route."""

    name: str

    def describe(self, request: web.Request) -> tuple[str, str] | None:
        """(vendor, action) for counting and fault matching; None: not a vendor call."""

    def fault_response(self, kind: str, vendor: str) -> web.StreamResponse | None:
        """The vendor-shaped answer for ``throttle``/``overload``; None: HTTP 503 instead."""

    async def code_fault(
        self, request: web.Request, vendor: str, code: str
    ) -> web.StreamResponse | None:
        """The vendor's answer with API error ``code`` (a "code" fault); None: HTTP 503."""


class VendorService:
    """Base of a vendor module: state, routes, reset and a JSON snapshot."""

    name = ""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def config(self) -> SandboxConfig:
        return self.sandbox.config

    @property
    def stats(self) -> Stats:
        return self.sandbox.stats

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all vendor state."""

    def snapshot(self) -> dict[str, Any]:
        return {}

    # A service that owns its routes (not behind a shared front door) registers them
    # with add_vendor_route(app, self, ..., action=...) and may override these two.
    def describe(self, request: web.Request) -> tuple[str, str] | None:
        return self.name, request.path

    def fault_response(self, kind: str, vendor: str) -> web.StreamResponse | None:
        return None

    async def code_fault(
        self, request: web.Request, vendor: str, code: str
    ) -> web.StreamResponse | None:
        return None


ServiceFactory = Callable[["Sandbox"], VendorService]


class Sandbox:
    """The state of one running sandbox, kept in the app under :data:`SANDBOX`."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.plan = FaultPlan(config.faults, config.seed)
        self.services: list[VendorService] = []
        self.routes: dict[int, VendorRoute] = {}  # id(aiohttp route) -> its vendor

    def reset(self) -> None:
        self.stats = Stats()
        self.plan = FaultPlan(self.config.faults, self.config.seed)
        for service in self.services:
            service.reset()

    def configure(self, changes: dict[str, Any]) -> None:
        """Replace run-time settings; a new fault list or seed restarts the fault plan."""
        unknown = set(changes) - set(RUNTIME_FIELDS)
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} at run time")
        converted = {name: RUNTIME_FIELDS[name](value) for name, value in changes.items()}
        for name, value in converted.items():
            setattr(self.config, name, value)
        self.plan = FaultPlan(self.config.faults, self.config.seed)

    def runtime_config(self) -> dict[str, Any]:
        values = {name: getattr(self.config, name) for name in RUNTIME_FIELDS}
        values["faults"] = [asdict(rule) for rule in self.config.faults]
        return values

    def snapshot(self) -> dict[str, Any]:
        services = {s.name: s.snapshot() for s in self.services}
        return {**self.stats.to_dict(), "services": services}


@dataclass(frozen=True)
class VendorRoute:
    owner: RouteOwner
    action: str | None = None  # None: the owner names the action per request

    def describe(self, request: web.Request) -> tuple[str, str] | None:
        if self.action is None:
            return self.owner.describe(request)
        return self.owner.name, self.action


SANDBOX = web.AppKey("sandbox", Sandbox)


def sandbox_of(app: web.Application) -> Sandbox:
    return app[SANDBOX]


def add_vendor_route(
    app: web.Application,
    owner: RouteOwner,
    method: str,
    path: str,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    action: str | None = None,
) -> None:
    """Add a route that goes through the fault/latency middleware on behalf of ``owner``.

    Requests are counted as ``"{owner.name}.{action}"``; without ``action`` the owner's
    ``describe(request)`` names vendor and action (the Tencent front door does this).
    """
    route = app.router.add_route(method, path, handler)
    sandbox_of(app).routes[id(route)] = VendorRoute(owner, action)


def _default_services() -> list[ServiceFactory]:
    from sandbox.asr import AsrService
    from sandbox.gme import GmeService
    from sandbox.shumei import ShumeiService
    from sandbox.soe import SoeService
    from sandbox.tupu import TupuService

    # Vendors with their own paths come before the Tencent front door's catch-all POST.
    return [ShumeiService, TupuService, AsrService, SoeService, GmeService]


def create_app(
    config: SandboxConfig, services: list[ServiceFactory] | None = None
) -> web.Application:
    """The sandbox app; ``services`` are factories (usually classes) taking the :class:`Sandbox`."""
    from sandbox.control import add_control_routes
    from sandbox.faults import fault_middleware
    from sandbox.media import add_media_route

    app = web.Application(middlewares=[fault_middleware], client_max_size=MAX_BODY_BYTES)
    sandbox = app[SANDBOX] = Sandbox(config)
    add_control_routes(app)
    add_media_route(app, config)
    for factory in services if services is not None else _default_services():
        service = factory(sandbox)
        sandbox.services.append(service)
        service.add_routes(app)
    app.cleanup_ctx.append(_watch_loop_lag)
    return app


async def _watch_loop_lag(app: web.Application):
    """Measure how late the event loop wakes (its lag): the sandbox's own delay, in stats."""
    stats_of = lambda: sandbox_of(app).stats  # a lambda: reset() swaps the Stats object
    loop = asyncio.get_running_loop()

    async def watch() -> None:
        while True:
            start = loop.time()
            await asyncio.sleep(0.01)
            stats_of().loop_lag((loop.time() - start - 0.01) * 1000)

    task = asyncio.create_task(watch())
    yield
    task.cancel()


async def sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)
