"""RFC 3339 timestamps in, UTC microseconds out (SPEC sections 2 and 3).

Accepted: `YYYY-MM-DD`, `T` (or `t` or a space, as RFC 3339 section 5.6 allows), `hh:mm:ss`, an
optional fraction of 1-9 digits, and `Z` or a `+hh:mm`/`-hh:mm` offset. A timestamp without an
offset is refused (TIMESTAMP_NO_TZ). Refused as INVALID_TIMESTAMP: leap seconds (`:60`, not
representable without changing the instant), a fraction with non-zero digits beyond microseconds
(it would be truncated), impossible dates, offsets beyond +-23:59, and UTC years outside
1970-9999.
"""

from __future__ import annotations

import polars as pl

# After normalisation (`T` separator, `Z` as +00:00): everything RFC 3339 allows that maps to one
# microsecond instant. Checked by one regex; chrono then parses the same text.
_NORMALISED = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6}0{0,3})?[+-]([01][0-9]|2[0-3]):[0-5][0-9]$"
)
_NO_OFFSET = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?$"
OCCURRED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
MIN_YEAR, MAX_YEAR = 1970, 9999


def lacks_offset(text: pl.Expr) -> pl.Expr:
    """True where the text is a date-time of the right shape with no `Z` and no offset."""
    return text.str.contains(_NO_OFFSET)


def parse_utc(text: pl.Expr) -> pl.Expr:
    """Datetime[us, UTC] of a valid RFC 3339 text with an offset; null for anything else."""
    # One pass maps the spellings RFC 3339 allows onto the one chrono parses. Replacing every
    # occurrence is safe: a valid timestamp has at most one of each, and the strict pattern
    # refuses whatever else the replacement produced.
    normalised = text.str.replace_many(["Z", "z", "t", " "], ["+00:00", "+00:00", "T", "T"])
    # chrono's own RFC 3339 parser (`%+`) is twice as fast as the format spelled out, and
    # answers the same on every text the strict pattern admits.
    parsed = normalised.str.to_datetime("%+", strict=False, time_unit="us", time_zone="UTC")
    valid = normalised.str.contains(_NORMALISED)
    return pl.when(valid & parsed.dt.year().is_between(MIN_YEAR, MAX_YEAR)).then(parsed)


def occurred_at_text(ts: pl.Expr) -> pl.Expr:
    """UTC, six fractional digits, `Z`: `2026-04-03T10:15:00.000000Z`."""
    return ts.dt.convert_time_zone("UTC").dt.strftime(OCCURRED_AT_FORMAT)


def period_of(ts: pl.Expr) -> pl.Expr:
    """The UTC calendar month `YYYY-MM` of a timestamp."""
    return ts.dt.convert_time_zone("UTC").dt.strftime("%Y-%m")
