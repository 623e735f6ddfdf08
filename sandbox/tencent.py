"""Tencent Cloud API 3.0 front door shared by SOE and GME.

One catch-all ``POST`` route verifies TC3-HMAC-SHA256 (recomputed from what arrived
on the wire with :class:`vendors.tc3.TC3Signer`), checks the body against the
action's request model (:mod:`sandbox.tencent_models`: ``UnknownParameter`` for a
field the model lacks, ``InvalidParameter`` for a value of the wrong JSON type), then
dispatches on the credential scope's service (``soe``, ``gme``) and ``X-TC-Action``
to a product's handler.

A product (:class:`TencentProduct`) joins with ``mount(app, product)`` from its
``add_routes``. Its handlers take the request's JSON parameters and return the
fields of ``Response`` (``RequestId`` is added here), or raise :class:`TencentError`.
"""

from __future__ import annotations

import hmac
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from sandbox.core import SandboxConfig, add_vendor_route, sandbox_of
from sandbox.tencent_models import MODELS, Model
from vendors.tc3 import (
    ALGORITHM,
    SIGNED_HEADERS,
    UNSIGNED_PAYLOAD,
    Credentials,
    TC3Signer,
    parse_authorization,
    sha256_hex,
    utc_date,
)

# Common error codes of API 3.0 (products keep their own codes beside their handlers).
INVALID_AUTHORIZATION = "AuthFailure.InvalidAuthorization"
SECRET_ID_NOT_FOUND = "AuthFailure.SecretIdNotFound"
SIGNATURE_EXPIRE = "AuthFailure.SignatureExpire"
SIGNATURE_FAILURE = "AuthFailure.SignatureFailure"
TOKEN_FAILURE = "AuthFailure.TokenFailure"
INVALID_ACTION = "InvalidAction"
NO_SUCH_VERSION = "NoSuchVersion"
MISSING_PARAMETER = "MissingParameter"
INVALID_PARAMETER = "InvalidParameter"
INVALID_PARAMETER_VALUE = "InvalidParameterValue"
UNKNOWN_PARAMETER = "UnknownParameter"
REQUEST_LIMIT_EXCEEDED = "RequestLimitExceeded"
INTERNAL_ERROR = "InternalError"

ActionHandler = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]


class TencentError(Exception):
    """A vendor-shaped error: HTTP 200 with ``Response.Error.Code`` and ``Message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TencentProduct(Protocol):
    name: str  # the credential scope's service: "soe", "gme"
    version: str  # X-TC-Version, e.g. "2018-07-24"
    overload_code: str  # answered for the "overload" fault
    actions: dict[str, ActionHandler]
    # Optional: ``on_fault_code(code, params)``, told of a "code" fault before it is answered
    # (SOE drops the session of a code that means "initialise again").


def respond(fields: dict[str, Any]) -> web.Response:
    """``{"Response": {..., "RequestId": ...}}`` with the exact Content-Type the SDK checks."""
    body = {"Response": {**fields, "RequestId": str(uuid.uuid4())}}
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")


def error_response(error: TencentError) -> web.Response:
    return respond({"Error": {"Code": error.code, "Message": error.message}})


def _parse(value: str) -> dict[str, str]:
    try:
        auth = parse_authorization(value)
    except (KeyError, ValueError) as exc:
        raise TencentError(INVALID_AUTHORIZATION, "Authorization header is malformed") from exc
    if auth["algorithm"] != ALGORITHM or auth["signed_headers"] != SIGNED_HEADERS:
        raise TencentError(
            INVALID_AUTHORIZATION, f"expected {ALGORITHM} with SignedHeaders={SIGNED_HEADERS}"
        )
    return auth


def _timestamp(request: web.Request, tolerance: float) -> int:
    try:
        timestamp = int(request.headers.get("X-TC-Timestamp", ""))
    except ValueError as exc:
        raise TencentError(
            MISSING_PARAMETER, "X-TC-Timestamp is missing or not an integer"
        ) from exc
    if abs(time.time() - timestamp) > tolerance:
        raise TencentError(
            SIGNATURE_EXPIRE, "Signature expired: X-TC-Timestamp is outside the allowed clock skew"
        )
    return timestamp


def _payload_hash(request: web.Request, body: bytes) -> str:
    unsigned = request.headers.get("X-TC-Content-SHA256") == UNSIGNED_PAYLOAD
    return sha256_hex(UNSIGNED_PAYLOAD if unsigned else body)


def expected_signature(
    request: web.Request, body: bytes, config: SandboxConfig, service: str, timestamp: int
) -> str:
    """The TC3 signature of this request as received: its path, Content-Type and Host."""
    canonical = TC3Signer.canonical_request(
        request.method,
        request.rel_url.raw_path,
        request.rel_url.raw_query_string,
        request.headers.get("Content-Type", ""),
        request.headers.get("Host", ""),
        _payload_hash(request, body),
    )
    signer = TC3Signer(Credentials(config.tencent_secret_id, config.tencent_secret_key), service)
    return signer.signature(timestamp, signer.string_to_sign(timestamp, canonical))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class FrontDoor:
    """The ``POST /{any path}`` route; owns counting and vendor-shaped faults for its products."""

    name = "tencent"

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.products: dict[str, TencentProduct] = {}

    def describe(self, request: web.Request) -> tuple[str, str] | None:
        action = request.headers.get("X-TC-Action")
        if not action:
            return None  # not an API 3.0 call: answered with 404
        try:
            service = parse_authorization(request.headers.get("Authorization", ""))["service"]
        except (KeyError, ValueError):
            service = self.name
        return service, action

    def fault_response(self, kind: str, vendor: str) -> web.Response:
        if kind == "throttle":
            return error_response(
                TencentError(
                    REQUEST_LIMIT_EXCEEDED,
                    "Your request frequency exceeds the limit (sandbox fault)",
                )
            )
        code = getattr(self.products.get(vendor), "overload_code", INTERNAL_ERROR)
        return error_response(
            TencentError(code, "The service is overloaded, please retry later (sandbox fault)")
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("X-TC-Action"):
            raise web.HTTPNotFound()
        body = await request.read()
        try:
            product = self.product(self.verify(request, body))
            result = await self.call(product, request, body)
        except TencentError as error:
            return error_response(error)
        return respond(result)

    def verify(self, request: web.Request, body: bytes) -> str:
        """Check the TC3 signature; return the credential scope's service."""
        auth = _parse(request.headers.get("Authorization", ""))
        if not self.config.tencent_secret_id or not _same(
            auth["secret_id"], self.config.tencent_secret_id
        ):
            raise TencentError(SECRET_ID_NOT_FOUND, "The SecretId is not found")
        timestamp = _timestamp(request, self.config.clock_skew_s)
        signature = expected_signature(request, body, self.config, auth["service"], timestamp)
        if auth["date"] != utc_date(timestamp) or not _same(signature, auth["signature"]):
            raise TencentError(SIGNATURE_FAILURE, "The provided credentials could not be validated")
        self._check_token(request.headers.get("X-TC-Token", ""))
        return auth["service"]

    def _check_token(self, token: str) -> None:
        expected = self.config.tencent_token
        if expected is not None and not _same(token, expected):
            raise TencentError(TOKEN_FAILURE, "The token is invalid or missing")

    def product(self, service: str) -> TencentProduct:
        try:
            return self.products[service]
        except KeyError:
            raise TencentError(
                INVALID_AUTHORIZATION, f"unknown service {service!r} in the credential scope"
            ) from None

    async def call(
        self, product: TencentProduct, request: web.Request, body: bytes
    ) -> dict[str, Any]:
        version, action = request.headers.get("X-TC-Version", ""), request.headers["X-TC-Action"]
        if version != product.version:
            raise TencentError(
                NO_SUCH_VERSION, f"{product.name} has no version {version!r}; use {product.version}"
            )
        handler = product.actions.get(action)
        if handler is None:
            raise TencentError(INVALID_ACTION, f"{product.name} has no action {action!r}")
        params = _params(body)
        check_request(product.name, action, params)
        result = handler(params)
        return await result if inspect.isawaitable(result) else result

    async def code_fault(self, request: web.Request, vendor: str, code: str) -> web.Response:
        """Answer a "code" fault: HTTP 200 with ``code``, as the vendor would, the product
        told first (with the body's parameters, when they can be read)."""
        hook = getattr(self.products.get(vendor), "on_fault_code", None)
        if hook is not None:
            try:
                params = _params(await request.read())
            except TencentError:
                params = {}
            hook(code, params)
        return error_response(TencentError(code, f"{code} (sandbox fault)"))


def _params(body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body or b"{}")
    except ValueError as exc:
        raise TencentError(INVALID_PARAMETER, "The request body is not valid JSON") from exc
    if not isinstance(params, dict):
        raise TencentError(INVALID_PARAMETER, "The request body must be a JSON object")
    return params


# -- request models ----------------------------------------------------------
def _is(kind: str, value: Any) -> bool:
    """Is ``value`` (parsed JSON) of the SDK type ``kind`` (a primitive)?"""
    if isinstance(value, bool):
        return kind == "bool"
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, int | float)
    return kind == "str" and isinstance(value, str)


def check_model(models: dict[str, Model], name: str, body: Any, path: str = "") -> None:
    """Raise the API's :class:`TencentError` for the first field of ``body`` that model
    ``name`` does not have, or whose value is not of its type."""
    if not isinstance(body, dict):
        raise TencentError(INVALID_PARAMETER, f"`{path or name}` must be an object")
    model = models[name]
    for field, value in body.items():
        where = f"{path}.{field}" if path else field
        kind = model.get(field)
        if kind is None:
            raise TencentError(UNKNOWN_PARAMETER, f"The parameter `{where}` is not recognized")
        _check_value(models, kind, value, where)


def _check_value(models: dict[str, Model], kind: str, value: Any, where: str) -> None:
    if value is None:  # taken as absent: the action says whether the field is required
        return
    if kind.startswith("list of "):
        if not isinstance(value, list):
            raise TencentError(INVALID_PARAMETER, f"The parameter `{where}` must be an array")
        for i, item in enumerate(value):
            _check_value(models, kind.removeprefix("list of "), item, f"{where}.{i}")
    elif kind in models:
        check_model(models, kind, value, where)
    elif not _is(kind, value):
        raise TencentError(
            INVALID_PARAMETER, f"The parameter `{where}` must be of type {kind}, not {_json_type(value)}"
        )


def _json_type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def check_request(service: str, action: str, params: dict[str, Any]) -> None:
    """Check ``params`` against ``{action}Request`` of ``service``, where the sandbox has it."""
    models = MODELS.get(service, {})
    if f"{action}Request" in models:
        check_model(models, f"{action}Request", params)


FRONT_DOOR = web.AppKey("tencent_front_door", FrontDoor)


def mount(app: web.Application, product: TencentProduct) -> None:
    """Serve ``product``'s actions behind the app's front door (created on first use)."""
    door = app.get(FRONT_DOOR)
    if door is None:
        door = app[FRONT_DOOR] = FrontDoor(sandbox_of(app).config)
        add_vendor_route(app, door, "POST", "/{tail:.*}", door.handle)
    door.products[product.name] = product
