"""The dashboard API (SPEC section 7): FastAPI over the warehouse's read snapshots."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import checkpoints, customers, proofs
from api.envelope import error, ok
from api.reader import SnapshotReader
from api.security import TokenVerifier
from api.writes import WriteQueue
from flows.config import Settings, get_settings
from flows.errors import TallyproofError
from flows.signing import jwks
from flows.snapshots import current_snapshot

log = logging.getLogger(__name__)

_LOCATIONS = {"query": "", "path": "", "header": "", "body": "", "cookie": ""}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="tallyproof dashboard API",
        version="1",
        description="Customers, balances, checkpoints, receipts and verification packages of "
        "one tenant (from the token's `tenant_id`) in one environment (`X-Environment`).",
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.state.reader = SnapshotReader(settings)
    app.state.writes = WriteQueue(settings.api_write_wait_seconds)

    # batch-checkpoints/export before /{customerId}/export, which would otherwise match it
    app.include_router(checkpoints.batch_router)
    app.include_router(customers.router)
    app.include_router(checkpoints.router)
    app.include_router(proofs.router)

    @app.get("/healthz", tags=["operations"], summary="Liveness, no auth")
    def healthz() -> JSONResponse:
        """The snapshot named is the one the next request reads."""
        snapshot = current_snapshot(settings)
        return ok({"status": "ok", "snapshot": snapshot.name if snapshot else None})

    @app.get("/.well-known/jwks.json", tags=["operations"], summary="Signing keys, no auth")
    def well_known_jwks() -> JSONResponse:
        return JSONResponse(jwks(settings))

    app.add_exception_handler(TallyproofError, _known_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(DeprecatedAliases)
    return app


class DeprecatedAliases:
    """`Deprecation: true` and the successor's `Link` on every answer of a deprecated alias,
    errors included (SPEC section 7: an alias answers exactly like its route, plus those).

    A middleware because an error (a bad token, a bad parameter) is answered by the exception
    handlers, outside the alias's own function. The successor is the route's `x-successor`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            route = scope.get("route")  # set by the router on this same scope
            if message["type"] == "http.response.start" and getattr(route, "deprecated", False):
                successor = route.openapi_extra["x-successor"].format(  # type: ignore[union-attr]
                    customerId=quote(scope["path_params"]["customerId"], safe=":")
                )
                headers = MutableHeaders(scope=message)
                headers["Deprecation"] = "true"
                headers["Link"] = f'<{successor}>; rel="successor-version"'
            await send(message)

        await self.app(scope, receive, send_marked)


async def _known_error(request: Request, err: TallyproofError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if err.http_status == 401 else None
    return error(err.http_status, err.code, err.message, err.details or None, headers)


async def _bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
    problems = []
    for item in err.errors():
        if item.get("type") == "json_invalid":  # its location is ("body", character offset)
            problems.append(
                {
                    "parameter": "body",
                    "message": f"not valid JSON at character {item['loc'][-1]}: {item['msg']}",
                }
            )
            continue
        location = [str(part) for part in item.get("loc", ()) if str(part) not in _LOCATIONS]
        problems.append({"parameter": ".".join(location) or "body", "message": item.get("msg")})
    first = problems[0] if problems else {"parameter": "request", "message": "invalid"}
    message = f"{first['parameter']}: {first['message']}"
    return error(400, "BAD_REQUEST", message, {"parameter": first["parameter"], "errors": problems})


async def _http_error(request: Request, err: HTTPException) -> JSONResponse:
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    return error(
        err.status_code,
        codes.get(err.status_code, "HTTP_ERROR"),
        str(err.detail),
        headers=getattr(err, "headers", None),
    )


async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error(500, "INTERNAL_ERROR", "an unexpected error; it has been logged")


def run(settings: Settings, host: str, port: int, **options: Any) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, **options)
