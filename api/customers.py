"""Customer routes: the list, the summary, a customer's detail and activity, its CSV export."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import duckdb
import polars as pl
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import CurrentScope, Reader, Scope
from api.envelope import listed, ok, page_of
from api.values import (
    delta_json,
    instant,
    money,
    open_period,
    parse_instant,
    require_customer,
)
from flows.errors import InvalidRequestError
from flows.outputs import ACTIVITY_COLUMNS
from flows.warehouse import fetch_one, query_frame, sql
from transforms.csv_text import csv_header, csv_line

router = APIRouter(prefix="/dashboard/customers", tags=["customers"])

MAX_PAGE = 1_000_000  # far beyond any data; keeps offsets inside 64 bits
CustomerId = Annotated[str, Path(alias="customerId", description="the customer's id")]


class Status(StrEnum):
    pending = "pending"
    verified = "verified"
    failed = "failed"


class SortBy(StrEnum):
    occurredAt = "occurredAt"  # noqa: N815 - the API's own spelling
    amount = "amount"
    status = "status"
    reason = "reason"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


def _delta_counts(row: dict[str, Any]) -> dict[str, int]:
    return {
        "total": row["deltas_total"],
        "verified": row["deltas_verified"],
        "pending": row["deltas_pending"],
        "failed": row["deltas_failed"],
    }


def _customer_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "customerId": row["customer_id"],
        "balance": money(row["balance"]),
        "credits": money(row["credits"]),
        "debits": money(row["debits"]),
        "deltaCounts": _delta_counts(row),
        "firstActivityAt": instant(row["first_activity_at"]),
        "lastActivityAt": instant(row["last_activity_at"]),
        "periods": row["periods"],
        "lastPeriod": row["last_period"],
        "lastCheckpointPeriod": row["last_checkpoint_period"],
    }


@router.get("", summary="List customers")
def list_customers(
    scope: CurrentScope,
    cursor: Reader,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page number, from 1")] = 1,
    limit: Annotated[int, Query(ge=1, le=100, description="customers per page, 1-100")] = 25,
    search: Annotated[
        str | None, Query(max_length=128, description="a substring of the customer id")
    ] = None,
) -> JSONResponse:
    """The tenant's customers in the environment, by customer id, with balances and counts."""
    params = {
        "tenant_id": scope.tenant_id,
        "environment": scope.environment,
        "search": search or None,
    }
    (total,) = fetch_one(cursor, "api_count_customers", params)
    rows = query_frame(
        cursor,
        "api_select_customers",
        {**params, "customer_id": None, "limit": limit, "offset": (page - 1) * limit},
    )
    return listed([_customer_json(r) for r in rows.to_dicts()], page=page, limit=limit, total=total)


@router.get("/summary", summary="Aggregate totals")
def summary(scope: CurrentScope, cursor: Reader) -> JSONResponse:
    """Customers, deltas by status, balances, credits, debits and checkpoint coverage."""
    row = query_frame(
        cursor,
        "api_select_summary",
        {
            "tenant_id": scope.tenant_id,
            "environment": scope.environment,
            "open_period": open_period(),
        },
    ).row(0, named=True)
    closed, checkpointed = row["closed_customer_periods"], row["checkpointed"]
    return ok(
        {
            "customers": row["customers"],
            "deltas": {
                "total": row["deltas_total"],
                "verified": row["deltas_verified"],
                "pending": row["deltas_pending"],
                "failed": row["deltas_failed"],
            },
            "balance": money(row["credits"] + row["debits"]),
            "credits": money(row["credits"]),
            "debits": money(row["debits"]),
            "checkpoints": {
                "customerPeriods": row["customer_periods"],
                "closedCustomerPeriods": closed,
                "checkpointed": checkpointed,
                "coverage": round(checkpointed / closed, 6) if closed else None,
                "behind": row["checkpoints_behind"],
                "lastCheckpointAt": instant(row["last_checkpoint_at"]),
            },
        }
    )


def activity_filters(
    status: Annotated[Status | None, Query(description="pending, verified or failed")] = None,
    reason: Annotated[str | None, Query(max_length=500, description="exactly this reason")] = None,
    start_date: Annotated[
        str | None,
        Query(alias="startDate", description="from this day (YYYY-MM-DD, UTC) or instant"),
    ] = None,
    end_date: Annotated[
        str | None,
        Query(alias="endDate", description="through this day (YYYY-MM-DD, UTC) or instant"),
    ] = None,
    search: Annotated[
        str | None,
        Query(max_length=128, description="a substring of the delta id, reason or reference"),
    ] = None,
    sort_by: Annotated[SortBy, Query(alias="sortBy", description="the sort column")] = (
        SortBy.occurredAt
    ),
    sort_order: Annotated[SortOrder, Query(alias="sortOrder", description="asc or desc")] = (
        SortOrder.desc
    ),
) -> dict[str, Any]:
    start = parse_instant(start_date, "startDate", end=False)
    end = parse_instant(end_date, "endDate", end=True)
    if start and end and start >= end:
        raise InvalidRequestError("startDate", "startDate must not be after endDate")
    return {
        "status": status.value if status else None,
        "reason": reason,
        "start": start,
        "end": end,
        "search": search or None,
        "sort_by": sort_by.value,
        "descending": sort_order is SortOrder.desc,
    }


Filters = Annotated[dict[str, Any], Depends(activity_filters)]


@router.get("/{customerId}", summary="A customer's detail and activity")
def customer_detail(
    scope: CurrentScope,
    cursor: Reader,
    customer_id: CustomerId,
    filters: Filters,
    delta_page: Annotated[
        int, Query(alias="deltaPage", ge=1, le=MAX_PAGE, description="page of deltas, from 1")
    ] = 1,
    delta_limit: Annotated[
        int, Query(alias="deltaLimit", ge=1, le=100, description="deltas per page, 1-100")
    ] = 20,
) -> JSONResponse:
    """Balances, periods with their checkpoints, and one page of filtered, sorted deltas."""
    require_customer(cursor, scope.tenant_id, scope.environment, customer_id)
    who = {
        "tenant_id": scope.tenant_id,
        "environment": scope.environment,
        "customer_id": customer_id,
    }
    [row] = query_frame(
        cursor, "api_select_customers", {**who, "search": None, "limit": 1, "offset": 0}
    ).to_dicts()
    periods = query_frame(cursor, "api_select_customer_periods", who).to_dicts()
    (total,) = fetch_one(cursor, "api_count_activity", {**who, **_filter_params(filters)})
    deltas = query_frame(
        cursor,
        "api_select_activity",
        {**who, **filters, "limit": delta_limit, "offset": (delta_page - 1) * delta_limit},
    )
    return ok(
        {
            **_customer_json(row),
            "environment": scope.environment,
            "periods": [_period_json(p) for p in periods],
            "deltas": page_of(
                [delta_json(d) for d in deltas.to_dicts()],
                page=delta_page,
                limit=delta_limit,
                total=total,
            ),
        }
    )


def _filter_params(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if k not in ("sort_by", "descending")}


def _period_json(row: dict[str, Any]) -> dict[str, Any]:
    checkpoint = None
    if row["fingerprint"]:
        checkpoint = {
            "checkpointId": row["checkpoint_id"],
            "fingerprint": row["fingerprint"],
            "version": row["version"],
            "treeSize": row["tree_size"],
            "createdAt": instant(row["checkpointed_at"]),
            "upToDate": not row["checkpoint_behind"],
        }
    return {
        "period": row["period"],
        "deltaCounts": _delta_counts(row),
        "openingBalance": money(row["opening_balance"]),
        "credits": money(row["credits"]),
        "debits": money(row["debits"]),
        "closingBalance": money(row["closing_balance"]),
        "firstActivityAt": instant(row["first_activity_at"]),
        "lastActivityAt": instant(row["last_activity_at"]),
        "checkpoint": checkpoint,
    }


@router.get(
    "/{customerId}/export",
    summary="A customer's activity as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_activity(
    scope: CurrentScope, cursor: Reader, customer_id: CustomerId, filters: Filters
) -> StreamingResponse:
    """The filtered, sorted deltas as CSV (SPEC section 6 format), streamed in batches."""
    require_customer(cursor, scope.tenant_id, scope.environment, customer_id)
    params = {
        "tenant_id": scope.tenant_id,
        "environment": scope.environment,
        "customer_id": customer_id,
        **filters,
        "limit": None,
        "offset": 0,
    }
    # The generator outlives the request's cursor: it reads through its own.
    reader = cursor.cursor()
    return StreamingResponse(
        _csv_batches(reader, params),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_filename(scope, customer_id)}"'},
    )


def _filename(scope: Scope, customer_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in customer_id)
    return f"{scope.tenant_id}-{scope.environment}-{safe}-activity.csv"


def _csv_batches(
    cursor: duckdb.DuckDBPyConnection, params: dict[str, Any], batch_rows: int = 10_000
) -> Iterator[bytes]:
    try:
        yield csv_header(ACTIVITY_COLUMNS).encode()
        reader = cursor.sql(sql("api_select_activity"), params=params).to_arrow_reader(batch_rows)
        for batch in reader:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            frame = frame.with_columns(pl.col("occurred_at").dt.replace_time_zone("UTC"))
            lines = frame.select(line=csv_line(ACTIVITY_COLUMNS))["line"]
            yield ("".join(line + "\r\n" for line in lines)).encode()
    finally:
        cursor.close()
