"""Checkpoint routes: create or return, list, fingerprint candidates, batch export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.customers import MAX_PAGE, CustomerId
from api.deps import AppSettings, CurrentScope, Reader
from api.envelope import listed, ok
from api.values import instant, parse_period, require_customer
from api.writes import WriteQueue
from flows.checkpoints import ensure_checkpoint, stale_customers
from flows.fingerprints import Customer, fingerprint_candidates
from flows.outputs import BATCH_COLUMNS, batch_checkpoint_files, load_batch_checkpoints
from flows.receipts import checkpoint_document
from flows.warehouse import query_frame
from transforms.csv_text import csv_header

router = APIRouter(prefix="/dashboard/customers", tags=["checkpoints"])


class CheckpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    period: str = Field(description="the month to checkpoint, YYYY-MM", examples=["2026-03"])


def version_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **checkpoint_document(row),
        "version": row["version"],
        "period": row["period"],
        "createdAt": instant(row["created_at"]),
        "consistencyProof": json.loads(row["consistency_proof"])
        if row["consistency_proof"] is not None
        else None,
    }


@router.post("/{customerId}/checkpoint", summary="Create (or return) a checkpoint")
async def create_checkpoint(
    request: Request,
    scope: CurrentScope,
    settings: AppSettings,
    customer_id: CustomerId,
    body: CheckpointRequest,
) -> JSONResponse:
    """The customer's checkpoint of the period: the latest version when it is up to date,
    otherwise a new version, exactly as the nightly run would make it. 201 when created."""
    period = parse_period(body.period)
    who = Customer(scope.tenant_id, scope.environment, customer_id)
    reader = request.app.state.reader
    cursor = reader.cursor()
    try:
        require_customer(cursor, scope.tenant_id, scope.environment, customer_id)
        due = not stale_customers(cursor, period, who.frame()).is_empty()
        latest = None if due else _latest(cursor, who, period)
    finally:
        cursor.close()
    if latest is not None:
        return ok({**version_json(latest), "created": False})
    today = datetime.now(UTC).date()
    writes: WriteQueue = request.app.state.writes
    row, created = await writes.run(
        lambda wait: ensure_checkpoint(settings, who, period, today=today, wait_seconds=wait)
    )
    return ok({**version_json(row), "created": created}, status_code=201 if created else 200)


def _latest(cursor: Any, who: Customer, period: str) -> dict[str, Any] | None:
    versions = query_frame(cursor, "select_customer_checkpoints", who.params(period))
    latest = versions.filter(pl.col("is_latest"))
    return latest.row(0, named=True) if latest.height else None


@router.get("/{customerId}/checkpoints", summary="A customer's checkpoints")
def list_checkpoints(
    scope: CurrentScope,
    cursor: Reader,
    customer_id: CustomerId,
    period: Annotated[str | None, Query(description="only this month, YYYY-MM")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="versions per page, 1-100")] = 25,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page of versions, from 1")] = 1,
) -> JSONResponse:
    """Every checkpoint version, newest first, a page at a time."""
    require_customer(cursor, scope.tenant_id, scope.environment, customer_id)
    if period is not None:
        parse_period(period)
    who = Customer(scope.tenant_id, scope.environment, customer_id)
    rows = query_frame(cursor, "select_customer_checkpoints", who.params(period)).to_dicts()
    shown = rows[(page - 1) * limit : page * limit]
    items = [{**version_json(r), "isLatest": r["is_latest"]} for r in shown]
    return listed(items, page=page, limit=limit, total=len(rows))


SUCCESSOR = "/dashboard/customers/{customerId}/checkpoint-fingerprints"


def _candidates(
    scope: Any, cursor: Any, customer_id: str, period: str | None, fingerprint: str | None
) -> list[dict[str, Any]]:
    require_customer(cursor, scope.tenant_id, scope.environment, customer_id)
    if period is not None:
        parse_period(period)
    who = Customer(scope.tenant_id, scope.environment, customer_id)
    return fingerprint_candidates(cursor, who, period=period, fingerprint=fingerprint)


PeriodQuery = Annotated[str | None, Query(description="only this month, YYYY-MM")]
FingerprintQuery = Annotated[
    str | None, Query(description="a fingerprint, or a prefix of at least 8 lowercase hex")
]


@router.get("/{customerId}/checkpoint-fingerprints", summary="Fingerprint candidates")
def checkpoint_fingerprints(
    scope: CurrentScope,
    cursor: Reader,
    customer_id: CustomerId,
    period: PeriodQuery = None,
    fingerprint: FingerprintQuery = None,
) -> JSONResponse:
    """Every version ever made, newest first, with its tamper check and the consistency proof
    to the version after it; or those matching `fingerprint`."""
    found = _candidates(scope, cursor, customer_id, period, fingerprint)
    return listed(found, page=1, limit=max(len(found), 1), total=len(found))


@router.get(
    "/{customerId}/checkpoints/fingerprints",
    deprecated=True,
    summary="Fingerprint candidates (deprecated alias)",
    openapi_extra={"x-successor": SUCCESSOR},
)
@router.get(
    "/{customerId}/fingerprints",
    deprecated=True,
    summary="Fingerprint candidates (deprecated alias)",
    openapi_extra={"x-successor": SUCCESSOR},
)
def checkpoint_fingerprints_alias(
    scope: CurrentScope,
    cursor: Reader,
    customer_id: CustomerId,
    period: PeriodQuery = None,
    fingerprint: FingerprintQuery = None,
) -> JSONResponse:
    """Deprecated: use /checkpoint-fingerprints. (`app.DeprecatedAliases` adds the headers.)"""
    return checkpoint_fingerprints(scope, cursor, customer_id, period, fingerprint)


class ExportFormat(StrEnum):
    csv = "csv"
    json = "json"


batch_router = APIRouter(prefix="/dashboard/customers", tags=["checkpoints"])


@batch_router.get(
    "/batch-checkpoints/export",
    summary="Every customer's checkpoint of a period",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
def batch_export(
    scope: CurrentScope,
    cursor: Reader,
    period: Annotated[str | None, Query(description="the month, YYYY-MM")] = None,
    format: Annotated[ExportFormat, Query(description="csv or json")] = ExportFormat.json,  # noqa: A002
) -> Response:
    """The latest checkpoint of every customer of the period, as SPEC section 6's exports."""
    period = parse_period(period)
    partition = pl.DataFrame(
        [{"tenant_id": scope.tenant_id, "environment": scope.environment, "period": period}]
    )
    latest = load_batch_checkpoints(cursor, partition)
    files = {f.path.rsplit(".", 1)[1]: f for f in batch_checkpoint_files(latest)}
    if format is ExportFormat.json:
        document = (
            json.loads(files["json"].data)
            if files
            else {
                "tenantId": scope.tenant_id,
                "environment": scope.environment,
                "period": period,
                "checkpoints": [],
            }
        )
        return ok(document)
    data = files["csv"].data if files else csv_header(BATCH_COLUMNS).encode()
    name = f"{scope.tenant_id}-{scope.environment}-{period}-checkpoints.csv"
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
