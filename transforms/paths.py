"""Output paths that no identifier can steer out of its folder (SPEC section 6).

Identifiers are validated at ingest (`[A-Za-z0-9_.:-]`, never `.` or `..`), so in practice a
segment is the identifier itself. These functions do not rely on that: any character outside
the safe set is percent-encoded, and `.`/`..` become `%2E`/`%2E%2E`, so a segment can never be
empty, a parent reference, or contain a separator.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote

_SAFE = re.compile(r"[A-Za-z0-9_.:-]+")
# Hive partition values: the Hive/Arrow convention escapes ':' too (`%3A`).
_SAFE_PARTITION = re.compile(r"[A-Za-z0-9_.-]+")


# Cached: a publication asks for sixteen segments per customer-period (two files of four, when
# planned and when built), 1.2 million for a month of the 10 M bench, each holding the
# interpreter lock that the shard workers share.
@lru_cache(maxsize=1 << 17)
def path_segment(identifier: str) -> str:
    """One path segment for `identifier`."""
    return _encode(identifier, _SAFE, safe=":")


def partition_value(value: str) -> str:
    return _encode(value, _SAFE_PARTITION, safe="")


def _encode(value: str, allowed: re.Pattern[str], safe: str) -> str:
    if not value:
        raise ValueError("an empty identifier has no path")
    if value in (".", ".."):
        return "%2E" * len(value)
    return value if allowed.fullmatch(value) else quote(value, safe=safe)


def partition_path(table: str, tenant: str, environment: str, period: str) -> str:
    return (
        f"parquet/{table}/tenant={partition_value(tenant)}"
        f"/environment={partition_value(environment)}/period={partition_value(period)}"
    )
