"""occurred_at rules (SPEC section 2) and the UTC text of section 3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.timestamps import occurred_at_text, parse_utc, period_of
from transforms.validate import LANDING_SCHEMA, validated_rows

GOOD = {
    # an offset that moves the delta into another UTC month (and year)
    "2026-03-31T23:30:00-01:00": ("2026-04-01T00:30:00.000000Z", "2026-04"),
    "2026-01-01T00:30:00+01:00": ("2025-12-31T23:30:00.000000Z", "2025-12"),
    "2026-12-31T23:59:59.999999-00:01": ("2027-01-01T00:00:59.999999Z", "2027-01"),
    "2026-03-05T10:15:00.5+02:00": ("2026-03-05T08:15:00.500000Z", "2026-03"),
    "2026-03-05T10:15:00Z": ("2026-03-05T10:15:00.000000Z", "2026-03"),
    "2026-03-05t10:15:00z": ("2026-03-05T10:15:00.000000Z", "2026-03"),  # RFC 3339 5.6 note
    "2026-03-05 10:15:00+05:30": ("2026-03-05T04:45:00.000000Z", "2026-03"),
    "2026-03-05T10:15:00.123456000Z": ("2026-03-05T10:15:00.123456Z", "2026-03"),
    "2024-02-29T12:00:00Z": ("2024-02-29T12:00:00.000000Z", "2024-02"),  # leap day
}
BAD = {
    "2026-03-05T10:15:00": "TIMESTAMP_NO_TZ",
    "2026-03-05 10:15:00.25": "TIMESTAMP_NO_TZ",
    "2026-03-05": "INVALID_TIMESTAMP",
    "2026-02-30T00:00:00Z": "INVALID_TIMESTAMP",
    "2025-02-29T00:00:00Z": "INVALID_TIMESTAMP",
    "2026-03-05T24:00:00Z": "INVALID_TIMESTAMP",
    "2026-03-05T10:15:60Z": "INVALID_TIMESTAMP",  # leap second: not representable exactly
    "2026-03-05T10:15:00.1234567Z": "INVALID_TIMESTAMP",  # below a microsecond
    "2026-03-05T10:15:00+24:00": "INVALID_TIMESTAMP",
    "2026-03-05T10:15:00+0200": "INVALID_TIMESTAMP",
    "1969-12-31T23:59:59Z": "INVALID_TIMESTAMP",
    "yesterday": "INVALID_TIMESTAMP",
}


def landing(values: list[str]) -> pl.LazyFrame:
    rows = [
        {
            "_file": "f.csv",
            "_file_order": 0,
            "_line": i + 2,
            "tenant_id": "acme",
            "environment": "production",
            "delta_id": f"d{i}",
            "customer_id": "c1",
            "amount": "1",
            "reason": "r",
            "status": "verified",
            "occurred_at": value,
        }
        for i, value in enumerate(values)
    ]
    return pl.DataFrame(rows, schema=LANDING_SCHEMA).lazy()


@pytest.mark.parametrize(("text", "expected"), GOOD.items())
def test_good_timestamps_become_utc(text: str, expected: tuple[str, str]) -> None:
    row = (
        validated_rows(landing([text]))
        .collect()
        .with_columns(text=occurred_at_text(pl.col("occurred_at_utc")))
        .row(0, named=True)
    )
    assert row["_code"] is None
    assert (row["text"], row["period"]) == expected


@pytest.mark.parametrize(("text", "code"), BAD.items())
def test_bad_timestamps_are_refused(text: str, code: str) -> None:
    row = validated_rows(landing([text])).collect().row(0, named=True)
    assert (row["_code"], row["_field"]) == (code, "occurred_at")


def test_parse_matches_the_standard_library() -> None:
    texts = ["2026-07-14T03:04:05.060708+09:45", "2026-07-14T03:04:05-11:00"]
    parsed = pl.select(parse_utc(pl.Series(texts))).to_series().to_list()
    assert parsed == [datetime.fromisoformat(t).astimezone(UTC) for t in texts]
    periods = pl.select(period_of(pl.Series(parsed))).to_series().to_list()
    assert periods == ["2026-07", "2026-07"]


@given(
    local=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    digits=st.integers(0, 9),
    separator=st.sampled_from("Tt "),
    zulu=st.sampled_from(["Z", "z", "+00:00", "-00:00"]),
)
def test_every_spelling_parses_to_its_instant(
    local: datetime, offset_minutes: int, digits: int, separator: str, zulu: str
) -> None:
    # The instant from the parts, without a parser: the local time less the offset.
    fraction = f"{local.microsecond:06d}000"[:digits]  # 7-9 digits end in zeros
    kept = int(fraction[:6].ljust(6, "0")) if digits else 0
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    offset = zulu if offset_minutes == 0 else f"{sign}{hours:02d}:{minutes:02d}"
    text = (
        local.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + (f".{fraction}" if digits else "") + offset
    )
    expected = local.replace(microsecond=kept, tzinfo=UTC) - timedelta(minutes=offset_minutes)
    parsed = pl.select(parse_utc(pl.Series([text]))).item()
    assert parsed == expected, text
