"""Landing files that are odd but not unreadable: each gives its rows or its quarantine, and the
run goes on (SPEC section 2: bad input never crashes a run and is never lost)."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import HEADER, Ledger, csv_row


def delta_ids(ledger: Ledger) -> set[str]:
    return {r[0] for r in ledger.rows("SELECT delta_id FROM deltas")}


def quarantined(ledger: Ledger) -> list[tuple]:
    return ledger.rows("SELECT file, line, code, field, raw FROM quarantine ORDER BY file, line")


@pytest.mark.parametrize(
    "content",
    [
        b"",  # empty
        b"\n\n\r\n",  # blank lines
        HEADER.encode() + b"\n",  # a header alone
    ],
    ids=["empty", "blank-lines", "header-only"],
)
def test_a_csv_without_records_has_no_rows(ledger: Ledger, content: bytes) -> None:
    """These used to make one phantom row of nulls, whose quarantine insert failed the run."""
    ledger.land("a.csv", content)
    ledger.land_csv("b.csv", csv_row("good"))
    summary = ledger.ingest()
    assert delta_ids(ledger) == {"good"} and quarantined(ledger) == []
    assert (summary.files_ingested, summary.rows_read) == (2, 1)


def test_a_header_that_cannot_be_parsed_refuses_the_file(ledger: Ledger) -> None:
    ledger.land("a.csv", '"tenant_id,environment\n' + csv_row("lost?") + "\n")
    ledger.land_csv("b.csv", csv_row("good"))
    ledger.ingest()
    [(file, line, code, _, _)] = quarantined(ledger)
    assert (file, line, code) == ("a.csv", None, "UNREADABLE_FILE")  # whole: nothing is lost
    assert delta_ids(ledger) == {"good"}


def test_columns_named_like_the_readers_own_are_ignored(ledger: Ledger) -> None:
    ledger.land(
        "a.csv",
        f"{HEADER},_line,_raw,_amount_type\n{csv_row('d1')},99,spoof,decimal\n",
    )
    ledger.ingest()
    assert delta_ids(ledger) == {"d1"} and quarantined(ledger) == []
    assert ledger.rows("SELECT line FROM delta_events") == [(2,)]


def test_carriage_returns_alone_end_lines(ledger: Ledger) -> None:
    """An old Mac file: Polars saw one header line and no rows, and the file counted as done."""
    ledger.land("a.csv", "\r".join([HEADER, csv_row("d1"), csv_row("d2", amount="x")]) + "\r")
    summary = ledger.ingest()
    assert delta_ids(ledger) == {"d1"} and summary.rows_read == 2
    [(_, line, code, _, raw)] = quarantined(ledger)
    assert (line, code, raw) == (3, "INVALID_AMOUNT", csv_row("d2", amount="x"))


def test_a_carriage_return_in_a_quoted_cell_keeps_later_lines_right(ledger: Ledger) -> None:
    """Lines are counted as the csv module reads them (`\\r` alone ends one), and each
    record's raw text is its own."""
    with_cr = 'acme,production,d1,c1,10,"with\rcr",,verified,2026-03-05T10:00:00Z,'
    spanning = csv_row("d2", reason="multi\nline")  # quoted
    ledger.land_csv(
        "a.csv", with_cr, spanning, csv_row("d3", amount="x"), csv_row("d4", amount="y")
    )
    ledger.ingest()
    assert delta_ids(ledger) == {"d1", "d2"}
    assert [(r[1], r[4]) for r in quarantined(ledger)] == [
        (6, csv_row("d3", amount="x")),
        (7, csv_row("d4", amount="y")),
    ]


def test_a_stray_quote_costs_its_record_only(ledger: Ledger) -> None:
    stray = 'acme,production,d2,c1,10,"abc"def,,verified,2026-03-05T10:00:00Z,'
    ledger.land_csv("a.csv", csv_row("d1"), stray, csv_row("d3"))
    ledger.ingest()
    assert delta_ids(ledger) == {"d1", "d3"}
    [(_, line, code, _, raw)] = quarantined(ledger)
    assert (line, code, raw) == (3, "MALFORMED_ROW", stray)


def test_not_utf8_names_the_files_own_byte(ledger: Ledger) -> None:
    ledger.land("a.csv", b"\xef\xbb\xbfab\xff")
    ledger.ingest()
    [(message,)] = ledger.rows("SELECT message FROM quarantine")
    assert "byte 5" in message  # after the three bytes of the byte order mark


def _parquet(ledger: Ledger, name: str, **columns: pa.Array | list) -> None:
    base: dict[str, pa.Array | list] = {
        "tenant_id": ["acme"],
        "environment": ["production"],
        "delta_id": ["p1"],
        "customer_id": ["c1"],
        "amount": ["1"],
        "reason": ["r"],
        "status": ["verified"],
        "occurred_at": ["2026-03-05T10:00:00Z"],
    }
    rows = len(next(iter(columns.values()))) if columns else 1
    table = pa.table({k: v * rows if isinstance(v, list) else v for k, v in base.items()} | columns)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    ledger.land(name, buffer.getvalue())


def test_parquet_columns_that_repeat_after_normalising_refuse_the_file(ledger: Ledger) -> None:
    _parquet(ledger, "a.parquet", **{"Amount ": ["2"]})
    ledger.ingest()
    [(file, line, code, _, _)] = quarantined(ledger)
    assert (file, line, code) == ("a.parquet", None, "UNREADABLE_FILE")


def test_parquet_types_polars_does_not_take(ledger: Ledger) -> None:
    """A fixed-offset time zone, decimal256 amounts and an unknown decimal256 column crashed
    the run; a decimal256 in a text field is the wrong type, like any other."""
    india = dt.timezone(dt.timedelta(hours=5, minutes=30))
    offset = pa.array([dt.datetime(2026, 3, 5, 10, tzinfo=india)], pa.timestamp("us", "+05:30"))
    _parquet(ledger, "a.parquet", occurred_at=offset)
    big = pa.array([Decimal("1.50")], pa.decimal256(40, 2))
    _parquet(ledger, "b.parquet", delta_id=["p2"], amount=big, extra=big)
    _parquet(ledger, "c.parquet", delta_id=["p3"], reason=big)
    ledger.ingest()
    rows = ledger.rows("SELECT delta_id, amount, occurred_at FROM deltas ORDER BY 1")
    assert rows == [
        ("p1", Decimal("1"), dt.datetime(2026, 3, 5, 4, 30)),  # 10:00 at +05:30 is 04:30 UTC
        ("p2", Decimal("1.5"), dt.datetime(2026, 3, 5, 10)),
    ]
    [(file, line, code, field, raw)] = quarantined(ledger)
    assert (file, line, code, field) == ("c.parquet", 1, "INVALID_FIELD_TYPE", "reason")


def test_parquet_values_are_taken_exactly(ledger: Ledger) -> None:
    """Nanoseconds beyond the microsecond are refused, not cut off; a decimal of scale 8 is
    exact when its value is; a dictionary-encoded (pandas category) text column is text."""
    at = 1772704800123456000  # 2026-03-05T10:00:00.123456Z
    _parquet(
        ledger,
        "a.parquet",
        delta_id=["n1", "n2", "n3"],
        occurred_at=pa.array([at, at + 789, at], pa.timestamp("ns", tz="UTC")),
        amount=pa.array(
            [Decimal("12.50000000"), Decimal("1.5"), Decimal("1.12345678")], pa.decimal128(20, 8)
        ),
        status=pa.array(["verified"] * 3).dictionary_encode(),
    )
    ledger.ingest()
    assert ledger.rows("SELECT delta_id, amount, occurred_at FROM deltas") == [
        ("n1", Decimal("12.5"), dt.datetime(2026, 3, 5, 10, 0, 0, 123456))
    ]
    assert [r[1:4] for r in quarantined(ledger)] == [
        (2, "INVALID_TIMESTAMP", "occurred_at"),
        (3, "INVALID_AMOUNT", "amount"),
    ]


def test_a_parquet_row_of_the_wrong_type_keeps_its_value_in_the_raw_row(ledger: Ledger) -> None:
    _parquet(ledger, "a.parquet", reason=pa.array(["usage"]).cast(pa.binary()))
    ledger.ingest()
    [(_, _, code, field, raw)] = quarantined(ledger)
    assert (code, field) == ("INVALID_FIELD_TYPE", "reason")
    assert '"reason":"usage"' in raw


@pytest.mark.parametrize(
    "metadata",
    [
        pa.array(
            [{"plan": "pro", "région": None}, {"plan": None, "région": "eu"}, None, {}],
            pa.struct([("plan", pa.string()), ("région", pa.string())]),
        ),
        pa.array(
            [[("plan", "pro")], [("région", "eu"), ("tier", None)], None, []],
            pa.map_(pa.string(), pa.string()),
        ),
    ],
    ids=["struct", "map"],
)
def test_parquet_metadata_takes_keys_that_rows_lack(ledger: Ledger, metadata: pa.Array) -> None:
    """A struct column holds every key on every row (a row without one has it null), and a map
    may hold a null value: those keys are left out, where they used to refuse the row."""
    _parquet(ledger, "a.parquet", delta_id=["m1", "m2", "m3", "m4"], metadata=metadata)
    ledger.ingest()
    assert quarantined(ledger) == []
    rows = ledger.rows("SELECT delta_id, metadata FROM deltas ORDER BY delta_id")
    assert [(d, m and json.loads(m)) for d, m in rows] == [
        ("m1", {"plan": "pro"}),
        ("m2", {"région": "eu"}),
        ("m3", None),
        ("m4", None),
    ]


def test_parquet_metadata_of_other_types_is_refused(ledger: Ledger) -> None:
    _parquet(
        ledger,
        "a.parquet",
        delta_id=["s1"],
        metadata=pa.array([{"plan": 5}], pa.struct([("plan", pa.int64())])),
    )
    _parquet(ledger, "b.parquet", delta_id=["l1"], metadata=pa.array([[1]], pa.list_(pa.int64())))
    ledger.ingest()  # a list column used to fail the run: it cannot be cast to text
    assert [(f, code, field) for f, _, code, field, _ in quarantined(ledger)] == [
        ("a.parquet", "INVALID_METADATA", "metadata"),
        ("b.parquet", "INVALID_FIELD_TYPE", "metadata"),
    ]
    assert '"metadata":[1]' in quarantined(ledger)[1][4]


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ("[1]", "must be a JSON object, not an array"),
        ("null", "must be a JSON object, not null"),
        ('{"plan": 5}', "value of 'plan' must be a string, not a number"),
    ],
)
def test_metadata_messages_speak_json(ledger: Ledger, metadata: str, says: str) -> None:
    ledger.land_csv("a.csv", csv_row("d1", metadata=metadata))
    ledger.ingest()
    [(message,)] = ledger.rows("SELECT message FROM quarantine")
    assert says in message


def test_an_inbox_that_is_not_there_fails_the_run(ledger: Ledger) -> None:
    """A mistyped inbox used to make a successful run that had found nothing."""
    from flows.errors import StorageError

    ledger.inbox.rmdir()
    with pytest.raises(StorageError, match="does not exist"):
        ledger.ingest()
    ledger.inbox.mkdir()  # an empty inbox is fine
    assert ledger.ingest().files_seen == 0


def test_an_s3_inbox_needs_its_bucket_not_its_prefix(s3_bucket: str) -> None:
    """On S3 a prefix exists once something is under it: an empty one is an empty inbox, and
    only a missing bucket is a missing inbox."""
    from flows.errors import StorageError
    from flows.storage import open_location

    open_location(f"s3://{s3_bucket}/nothing/yet").require_folder("inbox")
    with pytest.raises(StorageError, match="no such bucket"):
        open_location(f"s3://{s3_bucket}-missing/in").require_folder("inbox")
