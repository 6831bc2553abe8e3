"""Request dependencies: settings, the caller, its tenant and environment, a snapshot cursor."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import duckdb
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.reader import SnapshotReader
from api.security import ENVIRONMENTS, Forbidden, Principal, TokenVerifier
from flows.config import Settings
from flows.errors import InvalidRequestError


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


bearer = HTTPBearer(auto_error=False, description="a JWT with `tenant_id` and `exp` claims")


def principal_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(request.headers.get("Authorization"))


@dataclass(frozen=True)
class Scope:
    """Whose data a request may see: one tenant, one environment."""

    tenant_id: str
    environment: str


def scope_of(
    request: Request,
    principal: Annotated[Principal, Depends(principal_of)],
    x_environment: Annotated[
        str | None,
        Header(description="`sandbox` or `production` (default `production`)"),
    ] = None,
) -> Scope:
    if len(set(request.headers.getlist("X-Environment"))) > 1:
        raise InvalidRequestError("X-Environment", "X-Environment is given twice, differently")
    environment = "production" if x_environment is None else x_environment
    if environment not in ENVIRONMENTS:
        raise InvalidRequestError("X-Environment", "X-Environment must be sandbox or production")
    if principal.environments is not None and environment not in principal.environments:
        raise Forbidden(
            f"the token does not allow the {environment} environment",
            details={"environment": environment},
        )
    return Scope(principal.tenant_id, environment)


def cursor_of(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    reader: SnapshotReader = request.app.state.reader
    cursor = reader.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


AppSettings = Annotated[Settings, Depends(settings_of)]
CurrentScope = Annotated[Scope, Depends(scope_of)]
Reader = Annotated[duckdb.DuckDBPyConnection, Depends(cursor_of)]
