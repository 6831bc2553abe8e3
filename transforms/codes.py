"""Quarantine codes: every reason a landing row or file can be refused (SPEC section 2).

The codes are a public, machine-readable contract: the quarantine table, the quarantine CSV and
the run summary use them. `DESCRIPTIONS` is what `docs/formats.md` documents.
"""

from __future__ import annotations

# Whole files
UNREADABLE_FILE = "UNREADABLE_FILE"
NOT_UTF8 = "NOT_UTF8"
UNSUPPORTED_FILE_TYPE = "UNSUPPORTED_FILE_TYPE"
# Structure of a row
MALFORMED_ROW = "MALFORMED_ROW"
INVALID_JSON = "INVALID_JSON"
INVALID_FIELD_TYPE = "INVALID_FIELD_TYPE"
# Fields
MISSING_FIELD = "MISSING_FIELD"
INVALID_IDENTIFIER = "INVALID_IDENTIFIER"
INVALID_ENVIRONMENT = "INVALID_ENVIRONMENT"
INVALID_AMOUNT = "INVALID_AMOUNT"
ZERO_AMOUNT = "ZERO_AMOUNT"
AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
INVALID_REASON = "INVALID_REASON"
INVALID_REFERENCE_ID = "INVALID_REFERENCE_ID"
INVALID_STATUS = "INVALID_STATUS"
TIMESTAMP_NO_TZ = "TIMESTAMP_NO_TZ"
INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
INVALID_METADATA = "INVALID_METADATA"
# Ledger rules
DELTA_CONFLICT = "DELTA_CONFLICT"
STATUS_REGRESSION = "STATUS_REGRESSION"

DESCRIPTIONS: dict[str, str] = {
    UNREADABLE_FILE: "the file cannot be parsed at all (truncated Parquet, a CSV header that "
    "repeats a column or cannot be parsed, Parquet columns that repeat a field)",
    NOT_UTF8: "the file is not valid UTF-8",
    UNSUPPORTED_FILE_TYPE: "the file's extension is not .csv, .jsonl, .ndjson or .parquet",
    MALFORMED_ROW: "a CSV record with more or fewer fields than the header, or one that cannot "
    "be parsed (a stray quote; an unclosed quote takes the rest of the file)",
    INVALID_JSON: "a JSONL line that is not a JSON object",
    INVALID_FIELD_TYPE: "a JSONL or Parquet field of the wrong type (e.g. a number for reason)",
    MISSING_FIELD: "a required field is absent or empty",
    INVALID_IDENTIFIER: "tenant_id, delta_id or customer_id breaks its character rule",
    INVALID_ENVIRONMENT: "environment is not sandbox or production",
    INVALID_AMOUNT: "amount is not an exact decimal (exponent, float, >6 decimals, bad syntax)",
    ZERO_AMOUNT: "amount is zero",
    AMOUNT_OUT_OF_RANGE: "the absolute amount is above 1,000,000,000",
    INVALID_REASON: "reason is longer than 500 characters",
    INVALID_REFERENCE_ID: "reference_id is longer than 128 characters",
    INVALID_STATUS: "status is not pending, verified, failed, queued or processing",
    TIMESTAMP_NO_TZ: "occurred_at has no Z and no UTC offset",
    INVALID_TIMESTAMP: "occurred_at is not a valid RFC 3339 timestamp (or outside 1970-9999)",
    INVALID_METADATA: "metadata is not an object of at most 50 string keys to string values",
    DELTA_CONFLICT: "a known delta_id arrived with different facts",
    STATUS_REGRESSION: "a status move other than pending -> verified or pending -> failed",
}

FILE_CODES = (UNREADABLE_FILE, NOT_UTF8, UNSUPPORTED_FILE_TYPE)
ROW_CODES = tuple(code for code in DESCRIPTIONS if code not in FILE_CODES)
