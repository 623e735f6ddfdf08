"""The middleware in front of every vendor route: count, add latency, inject faults.

Control routes (``/_sandbox/...``) and unknown paths pass straight through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox.core import FaultRule, VendorRoute, sandbox_of, sleep_ms

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Injection:
    request: web.Request
    handler: Handler
    route: VendorRoute
    rule: FaultRule
    vendor: str


def _close(request: web.Request) -> web.StreamResponse:
    """Close the TCP connection; aiohttp then finds it closed and sends nothing."""
    request.protocol.force_close()
    return web.Response()


async def _drop(i: Injection) -> web.StreamResponse:
    return _close(i.request)  # before the body is even read


async def _drop_after(i: Injection) -> web.StreamResponse:
    await i.handler(i.request)  # the state changes; the client never hears about it
    return _close(i.request)


async def _slow(i: Injection) -> web.StreamResponse:
    await sleep_ms(i.rule.slow_ms)
    return await i.handler(i.request)


async def _error5xx(i: Injection) -> web.StreamResponse:
    return web.Response(status=503, text="503 Service Unavailable (sandbox fault)")


async def _vendor_shaped(i: Injection) -> web.StreamResponse:
    response = i.route.owner.fault_response(i.rule.kind, i.vendor)
    return response if response is not None else await _error5xx(i)


async def _code(i: Injection) -> web.StreamResponse:
    code = sandbox_of(i.request.app).plan.code(i.rule)
    response = await i.route.owner.code_fault(i.request, i.vendor, code)
    return response if response is not None else await _error5xx(i)


APPLY: dict[str, Callable[[Injection], Awaitable[web.StreamResponse]]] = {
    "drop": _drop,
    "drop_after": _drop_after,
    "slow": _slow,
    "error5xx": _error5xx,
    "throttle": _vendor_shaped,
    "overload": _vendor_shaped,
    "code": _code,
}


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sandbox = sandbox_of(request.app)
    route = sandbox.routes.get(id(request.match_info.route))
    described = route.describe(request) if route is not None else None
    if described is None:
        return await handler(request)
    vendor, action = described
    sandbox.stats.record(vendor, action)
    await sleep_ms(sandbox.config.latency_ms)
    rule = sandbox.plan.pick(vendor, action)
    if rule is None:
        return await handler(request)
    sandbox.stats.fault(rule.kind, f"{vendor}.{action}")
    return await APPLY[rule.kind](Injection(request, handler, route, rule, vendor))
