"""Realistic synthetic landing events, seeded and reproducible (SPEC section 8, `generate`).

What makes it realistic: customer activity follows a Zipf law (a few heavy customers, a long
tail of light ones); most deltas are verified, some pending and some failed; most pending deltas
are confirmed (or failed) by a later event a few days on; some deltas arrive late, in files of a
later day or month; offsets move some timestamps across a UTC month boundary; reasons carry
commas, quotes, non-ASCII text and the occasional spreadsheet formula; a few deliveries repeat
exactly (at-least-once senders). With a bad-row rate, rows break every rule of SPEC section 2
(at least one of each code) and known deltas come back with conflicting facts or status.

Everything is numpy/Polars column work, so ten million rows take seconds, not minutes.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from transforms import codes
from transforms.messages import message

TENANT_NAMES = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
)
CREDIT_REASONS = ("top-up", "refund", "promo credit", "Gutschrift für März", "goodwill credit")
DEBIT_REASONS = (
    "usage",
    "api calls",
    "storage",
    'overage, "peak" hours',
    "egress",
    "=SUM(A1:A9)",
    "seat licence",
    "обслуживание",
    "サポート",
)
PLANS = (
    '{"plan":"pro","region":"eu"}',
    '{"plan":"free"}',
    '{"region":"us","plan":"team"}',
    '{"plan":"pro","source":"stripe"}',
    '{"\U0001f600":"smile","\ufb01":"ligature"}',
)
OFFSETS = ((0, "Z"), (120, "+02:00"), (-300, "-05:00"), (330, "+05:30"), (-60, "-01:00"))

# Codes a row of any format can break; format-only codes are applied by the writers.
ROW_CORRUPTIONS = (
    codes.MISSING_FIELD,
    codes.INVALID_IDENTIFIER,
    codes.INVALID_ENVIRONMENT,
    codes.INVALID_AMOUNT,
    codes.ZERO_AMOUNT,
    codes.AMOUNT_OUT_OF_RANGE,
    codes.INVALID_REASON,
    codes.INVALID_REFERENCE_ID,
    codes.INVALID_STATUS,
    codes.TIMESTAMP_NO_TZ,
    codes.INVALID_TIMESTAMP,
    codes.INVALID_METADATA,
    codes.DELTA_CONFLICT,
    codes.STATUS_REGRESSION,
)
FORMAT_CORRUPTIONS = {
    "csv": (codes.MALFORMED_ROW,),
    "jsonl": (codes.INVALID_JSON, codes.INVALID_FIELD_TYPE),
    "parquet": (),
}


@dataclass(frozen=True)
class GeneratorSpec:
    tenants: int = 2
    customers: int = 50
    months: int = 3
    deltas_per_month: int = 2_000
    seed: int = 7
    end_month: str = "2026-10"  # the last month with activity
    bad_rows: float = 0.0
    format: str = "csv"


def months_ending(end_month: str, count: int) -> list[date]:
    year, month = (int(part) for part in end_month.split("-"))
    firsts = []
    for _ in range(count):
        firsts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return firsts[::-1]


def tenant_ids(count: int) -> list[str]:
    return [TENANT_NAMES[i] if i < len(TENANT_NAMES) else f"tenant{i:03d}" for i in range(count)]


def landing_events(spec: GeneratorSpec) -> pl.DataFrame:
    """Every landing row, with `land_day` (the file it arrives in) and `corruption`.

    Each (tenant, month) draws from its own generator, seeded by the seed, the tenant and the
    month, and every later event of a delta (its settlement, a repeated delivery) comes from
    its own first event: a month is the same whatever window it is generated in, so windows
    that overlap (`--end-month` moved on by a month, as the demo does) agree on the deltas
    they share, and the second ingests them as duplicates, not conflicts. The exception is a
    window's first month, whose opening deltas go to every customer in turn (`_first_events`).
    """
    first_events = _first_events(spec)
    followups = _followups(first_events)
    settled = first_events.filter(pl.col("status").str.to_lowercase().is_in(["verified", "failed"]))
    duplicates = settled.filter(pl.col("duplicate_pick") < 0.005).with_columns(
        land_day=pl.col("land_day") + pl.duration(days=2)
    )
    events = pl.concat([first_events, followups, duplicates], how="vertical")
    if spec.bad_rows > 0:
        events = pl.concat([events, _bad_rows(first_events, events.height, spec)])
    return events.drop(DRAWS).sort(
        "land_day", "occurred_us", "delta_id", "status", maintain_order=True
    )


# The draws that decide a delta's later events, kept beside its first event until then.
DRAWS = ["duplicate_pick", "settle_pick", "verify_pick", "settle_delay"]


def customer_split(customers: int) -> tuple[int, int]:
    """(production, sandbox) customers of a tenant: `customers` in all, a fifth in sandbox
    (none below five), each customer being an id within its environment (SPEC section 1)."""
    sandbox = customers // 5
    return customers - sandbox, sandbox


def _first_events(spec: GeneratorSpec) -> pl.DataFrame:
    parts = []
    production, sandbox_customers = customer_split(spec.customers)
    weights = {size: _zipf(size) for size in {production, sandbox_customers} if size}
    months = months_ending(spec.end_month, spec.months)
    for t_index, tenant in enumerate(tenant_ids(spec.tenants)):
        for m_index, first in enumerate(months):
            rng = np.random.default_rng([spec.seed, t_index, first.year, first.month])
            n = spec.deltas_per_month
            days = calendar.monthrange(first.year, first.month)[1]
            start_us = int((first - date(1970, 1, 1)).total_seconds()) * 1_000_000
            sandbox = (rng.random(n) < 0.1) & (sandbox_customers > 0)
            customer = np.where(
                sandbox,
                rng.choice(sandbox_customers or 1, size=n, p=weights.get(sandbox_customers)),
                rng.choice(production, size=n, p=weights[production]),
            )
            if m_index == 0:
                # Every customer has a delta in the first month, as far as there are deltas:
                # Zipf's tail alone would leave most of a large population without one.
                sandbox[: spec.customers] = np.arange(min(n, spec.customers)) >= production
                ids = np.arange(spec.customers)
                customer[: spec.customers] = np.where(ids < production, ids, ids - production)[:n]
            parts.append(
                pl.DataFrame(
                    {
                        "tenant_id": tenant,
                        "environment": np.where(sandbox, "sandbox", "production"),
                        "delta_id": [f"dlt_{t_index:03d}_{first:%Y%m}_"] * n,
                        "seq": np.arange(n),
                        "customer_id": customer,
                        "occurred_us": start_us + rng.integers(0, days * 86_400_000_000, n),
                        "credit": rng.random(n) < 0.25,
                        "cents": rng.integers(1_000, 50_000, n),
                        "micros": rng.integers(1, 50_000_000, n),
                        "whole": rng.random(n) < 0.5,
                        "reason_pick": rng.integers(0, 1_000_000, n),
                        "has_reference": rng.random(n) < 0.5,
                        "metadata_pick": rng.integers(0, len(PLANS) * 4, n),
                        "offset_pick": rng.choice(
                            len(OFFSETS), size=n, p=[0.6, 0.1, 0.1, 0.1, 0.1]
                        ),
                        "fraction": rng.random(n) < 0.3,
                        "status_pick": rng.random(n),
                        "lag_days": rng.choice([0, 1, 3, 12], size=n, p=[0.8, 0.17, 0.02, 0.01]),
                        "alias_pick": rng.random(n),
                        "duplicate_pick": rng.random(n),
                        "settle_pick": rng.random(n),
                        "verify_pick": rng.random(n),
                        "settle_delay": rng.integers(1, 8, n),
                    }
                )
            )
    raw = pl.concat(parts, how="vertical")
    return raw.select(
        land_day=(
            pl.from_epoch("occurred_us", time_unit="us").dt.date()
            + pl.duration(days=pl.col("lag_days"))
        ),
        tenant_id=pl.col("tenant_id"),
        environment=pl.col("environment"),
        delta_id=pl.col("delta_id") + pl.col("seq").cast(pl.String).str.zfill(7),
        customer_id=pl.lit("cust_") + pl.col("customer_id").cast(pl.String).str.zfill(5),
        amount=_amount_text(),
        reason=_pick(pl.col("reason_pick"), CREDIT_REASONS, DEBIT_REASONS),
        reference_id=pl.when(pl.col("has_reference")).then(
            pl.lit("inv_") + pl.col("seq").cast(pl.String)
        ),
        status=_first_status(),
        occurred_at=_timestamp_text(),
        occurred_us=pl.col("occurred_us"),
        metadata=pl.col("metadata_pick").replace_strict(
            {i: p for i, p in enumerate(PLANS)}, default=None, return_dtype=pl.String
        ),
        corruption=pl.lit(None, pl.String),
    ).with_columns(raw.select(DRAWS))


def _zipf(size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** 1.1
    return weights / weights.sum()


def _amount_text() -> pl.Expr:
    cents = pl.col("cents")
    credit = (
        pl.when(pl.col("whole"))
        .then((cents // 100).cast(pl.String))
        .otherwise(message("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2)))
    )
    micros = pl.col("micros")
    debit = message(
        "-{}.{}", micros // 1_000_000, (micros % 1_000_000).cast(pl.String).str.zfill(6)
    )
    debit = (
        pl.when(pl.col("whole"))
        .then(debit.str.strip_chars_end("0").str.strip_chars_end("."))
        .otherwise(debit)
    )
    return pl.when(pl.col("credit")).then(credit).otherwise(debit)


def _pick(number: pl.Expr, credits: tuple[str, ...], debits: tuple[str, ...]) -> pl.Expr:
    credit = (number % len(credits)).replace_strict(
        dict(enumerate(credits)), return_dtype=pl.String
    )
    debit = (number % len(debits)).replace_strict(dict(enumerate(debits)), return_dtype=pl.String)
    return pl.when(pl.col("credit")).then(credit).otherwise(debit)


def _first_status() -> pl.Expr:
    pick = pl.col("status_pick")
    status = (
        pl.when(pick < 0.85)
        .then(pl.lit("verified"))
        .when(pick < 0.95)
        .then(pl.lit("pending"))
        .otherwise(pl.lit("failed"))
    )
    alias = pl.col("alias_pick")
    return (
        pl.when((status == "pending") & (alias < 0.2))
        .then(pl.lit("queued"))
        .when((status == "pending") & (alias < 0.3))
        .then(pl.lit("processing"))
        .when(alias > 0.98)
        .then(status.str.to_uppercase())
        .otherwise(status)
    )


def _timestamp_text() -> pl.Expr:
    minutes = pl.col("offset_pick").replace_strict({i: o[0] for i, o in enumerate(OFFSETS)})
    suffix = pl.col("offset_pick").replace_strict({i: o[1] for i, o in enumerate(OFFSETS)})
    local = pl.from_epoch("occurred_us", time_unit="us") + pl.duration(minutes=minutes)
    fraction = pl.when(pl.col("fraction")).then(local.dt.strftime("%.6f")).otherwise(pl.lit(""))
    return pl.concat_str(local.dt.strftime("%Y-%m-%dT%H:%M:%S"), fraction, suffix)


def _followups(first: pl.DataFrame) -> pl.DataFrame:
    """Most pending deltas are settled by a later event with the same facts."""
    pending = first.filter(
        pl.col("status").str.to_lowercase().is_in(["pending", "queued", "processing"])
    )
    return pending.filter(pl.col("settle_pick") < 0.75).with_columns(
        status=pl.when(pl.col("verify_pick") < 0.8)
        .then(pl.lit("verified"))
        .otherwise(pl.lit("failed")),
        land_day=pl.col("land_day") + pl.duration(days=pl.col("settle_delay")),
    )


def _bad_rows(first: pl.DataFrame, good: int, spec: GeneratorSpec) -> pl.DataFrame:
    """Rows that break each rule: at least one of every code, and `bad_rows` of all the rows
    (the `good` ones and these)."""
    corruptions = ROW_CORRUPTIONS + FORMAT_CORRUPTIONS.get(spec.format, ())
    count = max(len(corruptions), round(spec.bad_rows / (1 - spec.bad_rows) * good))
    picks = [corruptions[i % len(corruptions)] for i in range(count)]
    # A regression needs a settled delta to contradict; a conflict may hit any delta, pending
    # ones included (accepting it by mistake would then change a balance).
    regressions = picks.count(codes.STATUS_REGRESSION)
    settled = first.filter(pl.col("status") == "verified")
    others = [p for p in picks if p != codes.STATUS_REGRESSION]
    base = pl.concat(
        [
            first.sample(n=len(others), seed=spec.seed + 2, with_replacement=True),
            settled.sample(
                n=regressions if settled.height else 0, seed=spec.seed + 3, with_replacement=True
            ),
        ]
    )
    picks = others + [codes.STATUS_REGRESSION] * (base.height - len(others))
    fresh = pl.lit("bad_") + pl.int_range(pl.len()).cast(pl.String) + "_" + pl.col("delta_id")
    code = pl.col("corruption")
    later = pl.col("land_day") + pl.duration(days=1)
    return base.with_columns(corruption=pl.Series(picks, dtype=pl.String)).with_columns(
        delta_id=pl.when(code.is_in([codes.DELTA_CONFLICT, codes.STATUS_REGRESSION]))
        .then(pl.col("delta_id"))
        .otherwise(fresh),
        land_day=later,
        reason=pl.when(code == codes.MISSING_FIELD)
        .then(pl.lit(""))
        .when(code == codes.INVALID_REASON)
        .then(pl.lit("x" * 501))
        .otherwise(pl.col("reason")),
        customer_id=pl.when(code == codes.INVALID_IDENTIFIER)
        .then(pl.lit("cust 42/../x"))
        .otherwise(pl.col("customer_id")),
        environment=pl.when(code == codes.INVALID_ENVIRONMENT)
        .then(pl.lit("staging"))
        .otherwise(pl.col("environment")),
        amount=pl.when(code == codes.INVALID_AMOUNT)
        .then(pl.lit("1.5e3"))
        .when(code == codes.ZERO_AMOUNT)
        .then(pl.lit("-0.000"))
        .when(code == codes.AMOUNT_OUT_OF_RANGE)
        .then(pl.lit("1000000000.000001"))
        .when(code == codes.DELTA_CONFLICT)
        .then(pl.lit("999.99"))
        .otherwise(pl.col("amount")),
        reference_id=pl.when(code == codes.INVALID_REFERENCE_ID)
        .then(pl.lit("r" * 129))
        .otherwise(pl.col("reference_id")),
        status=pl.when(code == codes.INVALID_STATUS)
        .then(pl.lit("done"))
        .when(code == codes.STATUS_REGRESSION)
        .then(pl.lit("pending"))
        .when(code == codes.DELTA_CONFLICT)
        .then(pl.lit("verified"))
        .otherwise(pl.col("status")),
        occurred_at=pl.when(code == codes.TIMESTAMP_NO_TZ)
        .then(pl.col("occurred_at").str.replace(r"(Z|[+-][0-9]{2}:[0-9]{2})$", ""))
        .when(code == codes.INVALID_TIMESTAMP)
        .then(pl.lit("2026-02-30T25:61:00Z"))
        .otherwise(pl.col("occurred_at")),
        metadata=pl.when(code == codes.INVALID_METADATA)
        .then(pl.lit('{"plan": 5}'))
        .otherwise(pl.col("metadata")),
    )


def day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
