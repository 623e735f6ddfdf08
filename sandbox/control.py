"""The control API under ``/_sandbox/``: health, stats, reset and run-time config.

These routes bypass the fault/latency middleware.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.core import sandbox_of


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(sandbox_of(request.app).snapshot())


async def reset(request: web.Request) -> web.Response:
    sandbox_of(request.app).reset()
    return web.json_response({"ok": True})


async def configure(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request.app)
    try:
        sandbox.configure(await _json_object(request))
    except (ValueError, TypeError) as exc:
        return web.json_response({"ok": False, "error": str(exc)}, status=400)
    return web.json_response({"ok": True, "config": sandbox.runtime_config()})


async def show_config(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "config": sandbox_of(request.app).runtime_config()})


async def _json_object(request: web.Request) -> dict[str, Any]:
    data = json.loads(await request.read() or b"{}")
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_sandbox/health", health)
    app.router.add_get("/_sandbox/stats", stats)
    app.router.add_post("/_sandbox/reset", reset)
    app.router.add_get("/_sandbox/config", show_config)
    app.router.add_post("/_sandbox/config", configure)
