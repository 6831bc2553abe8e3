"""Proof routes: receipts (and their deprecated alias) and verification packages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.customers import CustomerId
from api.deps import AppSettings, CurrentScope, Reader
from api.envelope import ok
from api.values import parse_period, require_customer
from flows.fingerprints import Customer
from flows.packages import MAX_CHAIN, MAX_SAMPLE, build_package, store_package
from flows.receipts import build_receipt
from flows.signing import active_signing_key
from flows.storage import open_location

router = APIRouter(prefix="/dashboard/customers", tags=["proofs"])

PeriodQuery = Annotated[str | None, Query(description="the month, YYYY-MM")]


@router.get("/{customerId}/receipt", summary="A period's receipt")
def receipt(
    scope: CurrentScope, cursor: Reader, customer_id: CustomerId, period: PeriodQuery = None
) -> JSONResponse:
    """The latest checkpoint of the period with every leaf, so the customer can recompute
    the root alone (SPEC section 5)."""
    period = parse_period(period)
    require_customer(cursor, scope.tenant_id, scope.environment, customer_id)
    who = Customer(scope.tenant_id, scope.environment, customer_id)
    return ok(build_receipt(cursor, who, period))


@router.get(
    "/{customerId}/invoice-proof",
    deprecated=True,
    summary="A period's receipt (deprecated alias)",
    openapi_extra={"x-successor": "/dashboard/customers/{customerId}/receipt"},
)
def invoice_proof(
    scope: CurrentScope, cursor: Reader, customer_id: CustomerId, period: PeriodQuery = None
) -> JSONResponse:
    """Deprecated: use /receipt. (`app.DeprecatedAliases` adds the headers.)"""
    return receipt(scope, cursor, customer_id, period)


class PackageRequest(BaseModel):
    # A misspelt field (`Nonce`) is a 400, not a package sampled with a random nonce; and a
    # number is a JSON number, not `true` or "5".
    model_config = ConfigDict(extra="forbid", strict=True)

    period: str = Field(description="the month, YYYY-MM", examples=["2026-03"])
    sampleSize: int = Field(  # noqa: N815 - the API's spelling
        ge=1, le=MAX_SAMPLE, description=f"leaves to sample, 1-{MAX_SAMPLE}"
    )
    nonce: str | None = Field(
        None, min_length=1, max_length=256, description="default: 32 random hex"
    )
    chainLength: int = Field(  # noqa: N815
        1, ge=0, le=MAX_CHAIN, description="earlier checkpoints to include"
    )


@router.post(
    "/{customerId}/verification-package", summary="Create a verification package", status_code=201
)
async def verification_package(
    scope: CurrentScope,
    cursor: Reader,
    settings: AppSettings,
    customer_id: CustomerId,
    body: PackageRequest,
) -> JSONResponse:
    """A signed, sampled package of the latest checkpoint of the period, stored under
    packages/ in the output and returned (SPEC section 5)."""
    period = parse_period(body.period)
    require_customer(cursor, scope.tenant_id, scope.environment, customer_id)
    who = Customer(scope.tenant_id, scope.environment, customer_id)

    def build_and_store() -> dict:
        package = build_package(
            cursor,
            who,
            period,
            sample_size=body.sampleSize,
            nonce=body.nonce,
            chain_length=body.chainLength,
            key=active_signing_key(settings),
        )
        store_package(open_location(settings.output), who, package)
        return package

    return ok(await run_in_threadpool(build_and_store), status_code=201)
