"""The time that outputs record, reproducible on request.

Timestamps that land in published bytes (checkpoint `createdAt`, signature `iat`, manifest
`createdAt`, quarantine times) come from here. With `SOURCE_DATE_EPOCH` set (the
reproducible-builds convention: seconds since 1970, UTC) they are that instant, so two runs over
the same data give byte-identical outputs; otherwise they are the wall clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime


def now() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC)


def now_naive() -> datetime:
    """`now()` as a naive UTC datetime, the convention of every TIMESTAMP column."""
    return now().replace(tzinfo=None)


def now_text() -> str:
    return instant_text(now())


def instant_text(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and `Z`; a naive value is taken as UTC (the convention
    of every TIMESTAMP column)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_seconds() -> int:
    return int(now().timestamp())
