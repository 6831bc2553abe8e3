"""Every quarantine code of SPEC section 2, each triggered by a real file: the code, the line,
and the good rows of the same file kept."""

from __future__ import annotations

import io

import polars as pl
import pytest

from tests.conftest import HEADER, Ledger, csv_row

ROW_CASES = {
    "MISSING_FIELD": (csv_row("bad", reason=""), "reason"),
    "INVALID_IDENTIFIER": (csv_row("bad", customer="cust/../x"), "customer_id"),
    "INVALID_ENVIRONMENT": (csv_row("bad", environment="staging"), "environment"),
    "INVALID_AMOUNT": (csv_row("bad", amount="1e5"), "amount"),
    "ZERO_AMOUNT": (csv_row("bad", amount="0.000"), "amount"),
    "AMOUNT_OUT_OF_RANGE": (csv_row("bad", amount="1000000000.000001"), "amount"),
    "INVALID_REASON": (csv_row("bad", reason="x" * 501), "reason"),
    "INVALID_REFERENCE_ID": (csv_row("bad", reference="r" * 129), "reference_id"),
    "INVALID_STATUS": (csv_row("bad", status="done"), "status"),
    "TIMESTAMP_NO_TZ": (csv_row("bad", occurred_at="2026-03-05T10:00:00"), "occurred_at"),
    "INVALID_TIMESTAMP": (csv_row("bad", occurred_at="2026-02-30T10:00:00Z"), "occurred_at"),
    "INVALID_METADATA": (csv_row("bad", metadata='{"plan": 5}'), "metadata"),
    "MALFORMED_ROW": ("acme,production,bad,c1,10", ""),
}


def quarantined(ledger: Ledger) -> list[tuple]:
    return ledger.rows(
        "SELECT file, line, code, field, message, raw FROM quarantine ORDER BY file, line"
    )


def delta_ids(ledger: Ledger) -> set[str]:
    return {r[0] for r in ledger.rows("SELECT delta_id FROM deltas")}


@pytest.mark.parametrize("code", ROW_CASES)
def test_csv_row_codes(ledger: Ledger, code: str) -> None:
    bad_row, field = ROW_CASES[code]
    ledger.land_csv("2026-03-06.csv", csv_row("good1"), bad_row, csv_row("good2"))
    summary = ledger.ingest()
    [(file, line, got_code, got_field, message, raw)] = quarantined(ledger)
    assert (file, line, got_code) == ("2026-03-06.csv", 3, code)
    assert (got_field or "") == field
    assert "2026-03-06.csv line 3" in message
    assert raw == bad_row
    assert delta_ids(ledger) == {"good1", "good2"}
    assert summary.rows_quarantined == 1 and summary.quarantine_by_code == {code: 1}
    assert summary.rows_accepted == 2


def test_delta_conflict(ledger: Ledger) -> None:
    ledger.land_csv(
        "a.csv", csv_row("d1", amount="10"), csv_row("d1", amount="11"), csv_row("good")
    )
    ledger.ingest()
    [(_, line, code, field, message, _)] = quarantined(ledger)
    assert (line, code, field) == (3, "DELTA_CONFLICT", "amount")
    assert "'10'" in message and "'11'" in message
    assert ledger.rows("SELECT delta_id, amount FROM deltas ORDER BY 1") == [
        ("d1", 10),
        ("good", 10),
    ]


def test_status_regression_across_runs(ledger: Ledger) -> None:
    ledger.land_csv("a.csv", csv_row("d1", status="verified"))
    ledger.ingest()
    ledger.land_csv("b.csv", csv_row("good"), csv_row("d1", status="pending"))
    ledger.ingest()
    [(file, line, code, field, message, _)] = quarantined(ledger)
    assert (file, line, code, field) == ("b.csv", 3, "STATUS_REGRESSION", "status")
    # SPEC section 2: the message names the field, the file and the line.
    assert message == (
        "delta 'd1' has status verified; a move of its status to pending is not allowed"
        " (b.csv line 3)"
    )
    assert ledger.rows("SELECT delta_id, status FROM deltas ORDER BY 1") == [
        ("d1", "verified"),
        ("good", "verified"),
    ]


def jsonl(*lines: str) -> str:
    return "\n".join(lines) + "\n"


GOOD_JSON = (
    '{{"tenant_id":"acme","environment":"production","delta_id":"{d}",'
    '"customer_id":"c1","amount":"1","reason":"r","status":"verified",'
    '"occurred_at":"2026-03-05T10:00:00Z"}}'
)


@pytest.mark.parametrize(
    ("code", "line", "field"),
    [
        ("INVALID_JSON", '{"tenant_id": "acme", "amount": ', ""),
        ("INVALID_JSON", '["not", "an", "object"]', ""),
        (
            "INVALID_FIELD_TYPE",
            GOOD_JSON.format(d="bad").replace('"reason":"r"', '"reason":42'),
            "reason",
        ),
        (
            "INVALID_FIELD_TYPE",
            GOOD_JSON.format(d="bad").replace('"occurred_at"', '"metadata":["x"],"occurred_at"'),
            "metadata",
        ),
        (
            "INVALID_AMOUNT",
            GOOD_JSON.format(d="bad").replace('"amount":"1"', '"amount":12.5'),
            "amount",
        ),
    ],
)
def test_jsonl_codes(ledger: Ledger, code: str, line: str, field: str) -> None:
    ledger.land(
        "x.jsonl", jsonl(GOOD_JSON.format(d="good1"), "", line, GOOD_JSON.format(d="good2"))
    )
    ledger.ingest()
    [(_, got_line, got_code, got_field, _, raw)] = quarantined(ledger)
    assert (got_line, got_code, got_field or "") == (3, code, field)
    assert raw == line
    assert delta_ids(ledger) == {"good1", "good2"}


def test_jsonl_integer_amounts_are_accepted(ledger: Ledger) -> None:
    ledger.land("x.jsonl", jsonl(GOOD_JSON.format(d="d1").replace('"1"', "-15")))
    ledger.ingest()
    assert ledger.rows("SELECT amount FROM deltas") == [(-15,)]


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        (
            "a.csv",
            (HEADER + "\nacme,production,d9,c1,5,Gebühr,,verified,2026-03-05T10:00:00Z,\n").encode(
                "latin-1"
            ),
            "NOT_UTF8",
        ),
        ("b.parquet", b"PAR1 this is not parquet", "UNREADABLE_FILE"),
        ("c.xlsx", b"PK\x03\x04", "UNSUPPORTED_FILE_TYPE"),
    ],
)
def test_unreadable_files_are_quarantined_whole_and_the_run_goes_on(
    ledger: Ledger, name: str, content: bytes, code: str
) -> None:
    ledger.land(name, content)
    ledger.land_csv("z.csv", csv_row("good"))
    summary = ledger.ingest()
    [(file, line, got_code, _, message, _)] = quarantined(ledger)
    assert (file, line, got_code) == (name, None, code)
    assert name in message
    assert delta_ids(ledger) == {"good"}
    assert (summary.files_quarantined, summary.files_ingested) == (1, 1)
    # Refused once is enough: the same content is not refused again on the next run.
    assert ledger.ingest().files_skipped == 2


def test_truncated_parquet_is_unreadable(ledger: Ledger) -> None:
    buffer = io.BytesIO()
    pl.DataFrame({"tenant_id": ["acme"] * 100}).write_parquet(buffer)
    ledger.land("t.parquet", buffer.getvalue()[:-30])
    ledger.ingest()
    assert [r[2] for r in quarantined(ledger)] == ["UNREADABLE_FILE"]


def test_parquet_column_of_the_wrong_type(ledger: Ledger) -> None:
    frame = pl.DataFrame(
        {
            "tenant_id": ["acme", "acme"],
            "environment": ["production"] * 2,
            "delta_id": ["a", "b"],
            "customer_id": ["c1", "c1"],
            "amount": [1.5, 2.0],
            "reason": ["r", "r"],
            "status": ["verified"] * 2,
            "occurred_at": ["2026-03-05T10:00:00Z"] * 2,
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    ledger.land("p.parquet", buffer.getvalue())
    ledger.ingest()
    rows = quarantined(ledger)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (1, "INVALID_AMOUNT", "amount"),
        (2, "INVALID_AMOUNT", "amount"),
    ]
    assert '"amount":"1.5"' in rows[0][5]
