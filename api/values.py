"""Parameter parsing and JSON rendering shared by the routes."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from flows.checkpoints import is_period
from flows.clock import instant_text
from flows.errors import InvalidRequestError
from transforms.amounts import format_amount


def parse_period(value: str | None, parameter: str = "period") -> str:
    if value is None:
        raise InvalidRequestError(parameter, f"{parameter} is required (YYYY-MM)")
    if not is_period(value):
        raise InvalidRequestError(parameter, f"{parameter} must be a month, YYYY-MM")
    return value


# RFC 3339's date-time (SPEC section 2 reads timestamps the same way), or a whole day.
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)


def parse_instant(value: str | None, parameter: str, *, end: bool) -> datetime | None:
    """A date (YYYY-MM-DD, whole days in UTC) or an RFC 3339 instant, as the bound of a
    half-open range: for an end, the day after the date, or just after the instant.

    The forms are matched first: Python's `fromisoformat` also takes ISO 8601's week dates and
    basic format, which are not RFC 3339."""
    if value is None:
        return None
    timestamp = TIMESTAMP.fullmatch(value)
    if not (DAY.fullmatch(value) or timestamp):
        raise InvalidRequestError(
            parameter,
            f"{parameter} must be YYYY-MM-DD or an RFC 3339 timestamp with at most six "
            "fractional digits",
        )
    if timestamp and timestamp["offset"] is None:
        raise InvalidRequestError(parameter, f"{parameter} needs a UTC offset or Z")
    try:
        if timestamp is None:
            day = date.fromisoformat(value)
            moment, step = datetime(day.year, day.month, day.day), timedelta(days=1)
        else:
            moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
            moment, step = moment.astimezone(UTC).replace(tzinfo=None), timedelta(microseconds=1)
    except (ValueError, OverflowError):  # 30 February, hour 25, or beyond year 9999 in UTC
        raise InvalidRequestError(
            parameter, f"{parameter} is not a valid date and time in years 1 to 9999 (UTC)"
        ) from None
    if not end:
        return moment
    try:
        return moment + step
    except OverflowError:  # the end of 9999-12-31: every stored instant is before it
        return None


def require_customer(
    cursor: duckdb.DuckDBPyConnection, tenant_id: str, environment: str, customer_id: str
) -> None:
    """404, the same for a customer of another tenant or environment as for none at all."""
    from flows.fingerprints import Customer
    from flows.fingerprints import require_customer as require

    require(cursor, Customer(tenant_id, environment, customer_id))


def instant(value: datetime | None) -> str | None:
    return None if value is None else instant_text(value)


def money(value: Decimal | int | None) -> str | None:
    return None if value is None else format_amount(Decimal(value))


def delta_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "deltaId": row["delta_id"],
        "occurredAt": instant(row["occurred_at"]),
        "period": row["period"],
        "amount": money(row["amount"]),
        "status": row["status"],
        "reason": row["reason"],
        "referenceId": row["reference_id"],
        "metadata": json.loads(row["metadata"]) if row["metadata"] else None,
        "leafIndex": row["leaf_index"],
    }


def open_period(today: date | None = None) -> str:
    today = today or datetime.now(UTC).date()
    return f"{today:%Y-%m}"
