"""Every row rule of SPEC section 2, as one vectorised pass over the landing rows.

Input: the normalised landing rows the readers produce (`LANDING_SCHEMA`: every field as text,
plus where it came from and what the reader already found wrong). Output: the same rows with
`_code`, `_field` and `_message` (null on a good row) and the normalised facts of the good rows.
A row that breaks several rules is reported with the first one in field order.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms import codes
from transforms.amounts import (
    AMOUNT_PATTERN,
    EXPONENT_PATTERN,
    MAX_ABS_AMOUNT,
    TOO_MANY_DECIMALS_PATTERN,
    amount_decimal,
)
from transforms.messages import message
from transforms.metadata import metadata_check
from transforms.timestamps import lacks_offset, parse_utc, period_of

FIELDS = (
    "tenant_id",
    "environment",
    "delta_id",
    "customer_id",
    "amount",
    "reason",
    "reference_id",
    "status",
    "occurred_at",
    "metadata",
)
REQUIRED = (
    "tenant_id",
    "environment",
    "delta_id",
    "customer_id",
    "amount",
    "reason",
    "status",
    "occurred_at",
)
OPTIONAL = ("reference_id", "metadata")

LANDING_SCHEMA: dict[str, pl.DataType] = {
    "_file": pl.String(),
    "_file_order": pl.Int64(),
    "_line": pl.Int64(),
    "_raw": pl.String(),
    "_reader_code": pl.String(),
    "_reader_field": pl.String(),
    "_reader_message": pl.String(),
    "_amount_type": pl.String(),  # string | integer | decimal | float (JSONL, Parquet)
    **{name: pl.String() for name in FIELDS},
}

ID_PATTERN_64 = r"^[A-Za-z0-9_.:-]{1,64}$"
ID_PATTERN_128 = r"^[A-Za-z0-9_.:-]{1,128}$"
ENVIRONMENTS = ("sandbox", "production")
STATUS_ALIASES = {
    "pending": "pending",
    "queued": "pending",
    "processing": "pending",
    "verified": "verified",
    "failed": "failed",
}
MAX_REASON_CHARS = 500
MAX_REFERENCE_CHARS = 128


@dataclass(frozen=True)
class Rule:
    broken: pl.Expr
    code: str
    field: str
    problem: pl.Expr | str


def _value(name: str) -> pl.Expr:
    """A short quoted rendering of the offending value for messages."""
    text = pl.col(name)
    shown = pl.when(text.str.len_chars() > 60).then(text.str.slice(0, 57) + "...").otherwise(text)
    return pl.concat_str(pl.lit("'"), shown, pl.lit("'"))


def _missing(name: str) -> pl.Expr:
    return pl.col(name).is_null() | (pl.col(name) == "")


def _identifier_rules(name: str, pattern: str, limit: int) -> list[Rule]:
    bad = ~pl.col(name).str.contains(pattern) | pl.col(name).is_in([".", ".."])
    problem = message(
        "{} must be 1-{} of the characters A-Z a-z 0-9 _ . : - (not '.' or '..')",
        _value(name),
        pl.lit(limit),
    )
    return [Rule(bad, codes.INVALID_IDENTIFIER, name, problem)]


def _required(name: str) -> Rule:
    return Rule(_missing(name), codes.MISSING_FIELD, name, "is required")


def _rules() -> list[Rule]:
    """Every row rule in field order. They read the parsed columns `validated_rows` adds."""
    amount_type = pl.col("_amount_type").fill_null("string")
    return [
        _required("tenant_id"),
        *_identifier_rules("tenant_id", ID_PATTERN_64, 64),
        _required("environment"),
        Rule(
            ~pl.col("_environment").is_in(ENVIRONMENTS),
            codes.INVALID_ENVIRONMENT,
            "environment",
            message("{} must be sandbox or production", _value("environment")),
        ),
        _required("delta_id"),
        *_identifier_rules("delta_id", ID_PATTERN_128, 128),
        _required("customer_id"),
        *_identifier_rules("customer_id", ID_PATTERN_128, 128),
        _required("amount"),
        Rule(
            amount_type == "float",
            codes.INVALID_AMOUNT,
            "amount",
            message(
                "{} is a number with a fraction or exponent (a JSON number or a Parquet float); "
                "send a string, an integer or a decimal (floats lose cents)",
                _value("amount"),
            ),
        ),
        Rule(
            ~pl.col("amount").str.contains(AMOUNT_PATTERN),
            codes.INVALID_AMOUNT,
            "amount",
            pl.when(pl.col("amount").str.contains(EXPONENT_PATTERN))
            .then(message("{} uses exponent notation; write a plain decimal", _value("amount")))
            .when(pl.col("amount").str.contains(TOO_MANY_DECIMALS_PATTERN))
            .then(message("{} has more than 6 decimal places", _value("amount")))
            .otherwise(
                message(
                    "{} is not an exact decimal (optional '-', digits, optional "
                    "'.' and 1-6 digits)",
                    _value("amount"),
                )
            ),
        ),
        Rule(
            pl.col("_amount").is_null() | (pl.col("_amount").abs() > MAX_ABS_AMOUNT),
            codes.AMOUNT_OUT_OF_RANGE,
            "amount",
            message("{} is beyond +-1000000000", _value("amount")),
        ),
        Rule(
            pl.col("_amount") == 0,
            codes.ZERO_AMOUNT,
            "amount",
            message("{} is zero; a delta must change the balance", _value("amount")),
        ),
        _required("reason"),
        Rule(
            pl.col("reason").str.len_chars() > MAX_REASON_CHARS,
            codes.INVALID_REASON,
            "reason",
            message(
                "is {} characters (at most 500)", pl.col("reason").str.len_chars().cast(pl.String)
            ),
        ),
        Rule(
            pl.col("reference_id").str.len_chars() > MAX_REFERENCE_CHARS,
            codes.INVALID_REFERENCE_ID,
            "reference_id",
            message(
                "is {} characters (at most 128)",
                pl.col("reference_id").str.len_chars().cast(pl.String),
            ),
        ),
        _required("status"),
        Rule(
            ~pl.col("_status").is_in(list(STATUS_ALIASES)),
            codes.INVALID_STATUS,
            "status",
            message(
                "{} must be pending, verified or failed (queued and processing mean pending)",
                _value("status"),
            ),
        ),
        _required("occurred_at"),
        Rule(
            lacks_offset(pl.col("occurred_at")),
            codes.TIMESTAMP_NO_TZ,
            "occurred_at",
            message("{} has no UTC offset; add Z or +hh:mm", _value("occurred_at")),
        ),
        Rule(
            pl.col("_occurred").is_null(),
            codes.INVALID_TIMESTAMP,
            "occurred_at",
            message(
                "{} is not a valid RFC 3339 timestamp in years 1970-9999 with at most "
                "microsecond precision",
                _value("occurred_at"),
            ),
        ),
        Rule(
            pl.col("_metadata").struct.field("error").is_not_null(),
            codes.INVALID_METADATA,
            "metadata",
            pl.col("_metadata").struct.field("error"),
        ),
    ]


def validated_rows(landing: pl.LazyFrame) -> pl.LazyFrame:
    """Landing rows with `_code`, `_field`, `_message` and the normalised facts.

    Normalised facts (valid on good rows only): `environment` and `status` lowercased and
    `status` mapped from its aliases, `amount` as Decimal(18, 6), `reference_id` and `metadata`
    null when empty, `metadata` as canonical JCS text, `occurred_at_utc` and `period`.

    Good rows come first, in input order (their order is the ingest order); refused rows follow.
    Each value is parsed once; the rules then test the parsed columns, the index of the first
    broken rule is found in one pass, and messages are built for the refused rows only.
    """
    rules = _rules()
    # An empty optional field is an absent one (CSV cannot tell them apart).
    optional = [pl.when(pl.col(n) != "").then(pl.col(n)).alias(n) for n in OPTIONAL]
    parsed = landing.with_columns(optional).with_columns(
        _metadata=metadata_check(pl.col("metadata")),
        _amount=amount_decimal(pl.col("amount")),
        _occurred=parse_utc(pl.col("occurred_at")),
        _environment=pl.col("environment").str.to_lowercase(),
        _status=pl.col("status").str.to_lowercase(),
    )
    first_broken = pl.when(pl.col("_reader_code").is_not_null()).then(pl.lit(-1))
    for index, rule in enumerate(rules):
        first_broken = first_broken.when(rule.broken.fill_null(False)).then(pl.lit(index))
    ruled = parsed.with_columns(_rule=first_broken.otherwise(None).cast(pl.Int32))

    good = ruled.filter(pl.col("_rule").is_null()).with_columns(
        _code=pl.lit(None, pl.String),
        _field=pl.lit(None, pl.String),
        _message=pl.lit(None, pl.String),
    )
    bad = (
        ruled.filter(pl.col("_rule").is_not_null())
        .with_columns(
            _code=_by_rule(pl.col("_reader_code"), [pl.lit(r.code) for r in rules]),
            _field=_by_rule(pl.col("_reader_field"), [pl.lit(r.field) for r in rules]),
            _problem=_by_rule(
                pl.col("_reader_message"),
                [pl.lit(r.problem) if isinstance(r.problem, str) else r.problem for r in rules],
            ),
        )
        .with_columns(
            _message=pl.concat_str(
                pl.when(pl.col("_field") != "").then(pl.col("_field") + ": ").otherwise(pl.lit("")),
                pl.col("_problem"),
                message(" ({} line {})", pl.col("_file"), pl.col("_line")),
            )
        )
        .drop("_problem")
    )
    return (
        pl.concat([good, bad], how="vertical")
        .with_columns(
            environment=pl.col("_environment"),
            status=pl.col("_status").replace_strict(STATUS_ALIASES, default=None),
            amount=pl.col("_amount"),
            metadata=pl.col("_metadata").struct.field("canonical"),
            occurred_at_utc=pl.col("_occurred"),
            period=period_of(pl.col("_occurred")),
        )
        .drop("_metadata", "_amount", "_occurred", "_environment", "_status", "_rule")
    )


def _by_rule(from_reader: pl.Expr, per_rule: list[pl.Expr]) -> pl.Expr:
    """The expression of the row's first broken rule (-1: what the reader found)."""
    chosen = pl.when(pl.col("_rule") == -1).then(from_reader)
    for index, expr in enumerate(per_rule):
        chosen = chosen.when(pl.col("_rule") == index).then(expr)
    return chosen.otherwise(None)
