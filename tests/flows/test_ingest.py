"""Ingest end to end on real files and a real DuckDB file (SPEC section 2)."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import polars as pl
import pytest

from flows import ingest
from tests.conftest import HEADER, Ledger, csv_row

COUNTS = (
    "SELECT (SELECT count(*) FROM delta_events), (SELECT count(*) FROM deltas), "
    "(SELECT count(*) FROM quarantine), (SELECT count(*) FROM ingested_files)"
)


def test_rerunning_changes_nothing(ledger: Ledger) -> None:
    ledger.land_csv(
        "2026-03-01.csv", csv_row("d1", status="pending"), csv_row("d2"), csv_row("bad", amount="x")
    )
    ledger.land_csv("2026-03-02.csv", csv_row("d1"), csv_row("d2"))
    first = ledger.ingest()
    before = ledger.rows(COUNTS)
    second = ledger.ingest()
    assert ledger.rows(COUNTS) == before
    assert (first.files_ingested, second.files_ingested, second.files_skipped) == (2, 0, 2)
    assert (second.rows_read, second.rows_accepted, second.rows_quarantined) == (0, 0, 0)
    # The same content under another name is the same file.
    ledger.land("copy-of-2026-03-01.csv", (ledger.inbox / "2026-03-01.csv").read_bytes())
    assert ledger.ingest().files_skipped == 3
    assert ledger.rows(COUNTS) == before


def test_files_go_in_path_order_and_leaves_in_order_of_verification(ledger: Ledger) -> None:
    # b.csv sorts after a.csv, whatever order they were written in.
    ledger.land_csv("b.csv", csv_row("x", status="verified"), csv_row("y", status="verified"))
    ledger.land_csv("a.csv", csv_row("y", status="pending"), csv_row("z", status="verified"))
    summary = ledger.ingest()
    assert (summary.rows_accepted, summary.rows_duplicate) == (4, 0)
    events = ledger.rows("SELECT event_seq, delta_id, outcome FROM delta_events ORDER BY 1")
    assert [(d, o) for _, d, o in events] == [
        ("y", "created"),
        ("z", "created"),
        ("x", "created"),
        ("y", "advanced"),
    ]
    leaves = ledger.rows("SELECT delta_id, leaf_index FROM deltas ORDER BY leaf_index")
    assert leaves == [("z", 0), ("x", 1), ("y", 2)]
    order = ledger.rows("SELECT path, file_order FROM ingested_files ORDER BY file_order")
    assert order == [("a.csv", 0), ("b.csv", 1)]


def test_late_data_appends_to_the_tree_of_its_period(ledger: Ledger) -> None:
    ledger.land_csv(
        "1.csv",
        csv_row("a", occurred_at="2026-03-10T00:00:00Z"),
        csv_row("b", occurred_at="2026-04-02T00:00:00Z"),
    )
    ledger.ingest()
    ledger.land_csv("2.csv", csv_row("late", occurred_at="2026-03-01T00:00:00Z"))
    ledger.ingest()
    assert ledger.rows("SELECT delta_id, period, leaf_index FROM deltas ORDER BY 2, 3") == [
        ("a", "2026-03", 0),
        ("late", "2026-03", 1),
        ("b", "2026-04", 0),
    ]


def test_records_spanning_lines_bom_and_crlf(ledger: Ledger) -> None:
    content = (
        "\ufeff"
        + "\r\n".join(
            [
                HEADER,
                csv_row("d1", reason="two\nlines"),
                csv_row("d2"),
                "acme,production,short",
                csv_row("d3", reason='say "hi", then\nleave'),
            ]
        )
        + "\r\n"
    )
    ledger.land("m.csv", content)
    ledger.ingest()
    assert ledger.rows("SELECT delta_id, reason FROM deltas ORDER BY 1") == [
        ("d1", "two\nlines"),
        ("d2", "usage"),
        ("d3", 'say "hi", then\nleave'),
    ]
    assert ledger.rows("SELECT line, code, raw FROM quarantine") == [
        (5, "MALFORMED_ROW", "acme,production,short")
    ]
    assert ledger.rows("SELECT delta_id, line FROM delta_events ORDER BY 2") == [
        ("d1", 2),
        ("d2", 4),
        ("d3", 6),
    ]


def test_unclosed_quote_keeps_what_came_before(ledger: Ledger) -> None:
    ledger.land(
        "q.csv",
        "\n".join([HEADER, csv_row("d1"), 'acme,production,d2,"c1,oops', csv_row("d3")]) + "\n",
    )
    ledger.ingest()
    assert {r[0] for r in ledger.rows("SELECT delta_id FROM deltas")} == {"d1"}
    [(line, code, raw)] = ledger.rows("SELECT line, code, raw FROM quarantine")
    assert (line, code) == (3, "MALFORMED_ROW")
    assert raw.startswith('acme,production,d2,"c1,oops\n') and "d3" in raw


def _same_rows_as_jsonl_and_parquet() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tenant_id": ["acme", "acme"],
            "environment": ["Production", "sandbox"],
            "delta_id": ["d1", "d2"],
            "customer_id": ["c1", "c2"],
            "amount": ["-12.50", "7"],
            "reason": ['usage, "peak"', "top-up"],
            "reference_id": [None, "inv_1"],
            "status": ["VERIFIED", "queued"],
            "occurred_at": ["2026-03-05T10:15:00.5+02:00", "2026-03-31T23:30:00-01:00"],
            "metadata": ['{"b":"2","a":"1"}', None],
        }
    )


def _deltas(ledger: Ledger) -> list[tuple]:
    return ledger.rows(
        "SELECT tenant_id, environment, delta_id, customer_id, period, amount, "
        "reason, reference_id, metadata, occurred_at, status, leaf_index, salt "
        "FROM deltas ORDER BY delta_id"
    )


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "parquet"])
def test_every_format_gives_the_same_ledger(ledger: Ledger, file_format: str) -> None:
    frame = _same_rows_as_jsonl_and_parquet()
    if file_format == "csv":
        ledger.land("x.csv", frame.write_csv())
    elif file_format == "jsonl":
        lines = [
            json.dumps(
                {
                    k: (json.loads(v) if k == "metadata" and v else v)
                    for k, v in row.items()
                    if v is not None
                }
            )
            for row in frame.to_dicts()
        ]
        ledger.land("x.jsonl", "\n".join(lines) + "\n")
    else:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        ledger.land("x.parquet", buffer.getvalue())
    ledger.ingest()
    rows = _deltas(ledger)
    assert [r[:9] for r in rows] == [
        (
            "acme",
            "production",
            "d1",
            "c1",
            "2026-03",
            -12.5,
            'usage, "peak"',
            None,
            '{"a":"1","b":"2"}',
        ),
        ("acme", "sandbox", "d2", "c2", "2026-04", 7, "top-up", "inv_1", None),
    ]
    assert [(r[10], r[11]) for r in rows] == [("verified", 0), ("pending", None)]
    assert str(rows[0][9]) == "2026-03-05 08:15:00.500000"


def test_small_batches_give_the_same_ledger_as_one_batch(ledger: Ledger, settings) -> None:
    for day in range(1, 6):
        ledger.land_csv(
            f"2026-03-0{day}.csv",
            *(
                csv_row(f"d{day}{i}", status=s)
                for i, s in enumerate(["pending", "verified", "failed"])
            ),
            csv_row(f"d{day - 1}0", status="verified"),
        )
    ledger.ingest()
    one_batch = _deltas(ledger)
    small = Ledger(settings.with_overrides(batch_rows=2, warehouse=settings.data_dir / "b.duckdb"))
    small.ingest()
    assert _deltas(small) == one_batch


def test_s3_like_names_and_hidden_files_are_handled(ledger: Ledger) -> None:
    ledger.land_csv("sub/dir/2026-03-01.csv", csv_row("d1"))
    ledger.land_csv(".uploading.csv", csv_row("hidden"))
    ledger.land_csv("_tmp/x.csv", csv_row("hidden2"))
    summary = ledger.ingest()
    assert summary.files_seen == 1
    assert ledger.rows("SELECT path FROM ingested_files") == [("sub/dir/2026-03-01.csv",)]


def _rewrite_keeping_time(ledger: Ledger, name: str, *rows: str) -> None:
    """New content of the same size, with the file's old modification time put back."""
    path = ledger.inbox / name
    before = path.stat()
    size = before.st_size
    ledger.land_csv(name, *rows)
    assert path.stat().st_size == size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _age(path: Path, seconds: int = 3600) -> None:
    then = time.time_ns() - seconds * 10**9
    os.utime(path, ns=(then, then))


def test_a_file_unchanged_since_it_was_hashed_is_not_read_again(ledger: Ledger, settings) -> None:
    _age(ledger.land_csv("2026-03-01.csv", csv_row("d1"), csv_row("d2")))
    ledger.ingest()
    # Same size, same time: taken as the content hashed before, without reading it.
    _rewrite_keeping_time(ledger, "2026-03-01.csv", csv_row("d3"), csv_row("d4"))
    summary = ledger.ingest()
    assert (summary.files_skipped, summary.rows_read) == (1, 0)
    assert ledger.rows("SELECT count(*) FROM deltas") == [(2,)]
    # Asked to, a run reads and hashes every file, and finds the new content.
    rehashing = Ledger(settings.with_overrides(rehash_inbox=True))
    assert rehashing.ingest().files_ingested == 1
    assert ledger.rows("SELECT delta_id FROM deltas ORDER BY 1") == [
        ("d1",),
        ("d2",),
        ("d3",),
        ("d4",),
    ]


def test_a_file_changed_since_it_was_hashed_is_read_again(ledger: Ledger) -> None:
    _age(ledger.land_csv("a.csv", csv_row("d1")))
    _age(ledger.land_csv("b.csv", csv_row("d2")))
    ledger.ingest()
    ledger.land_csv("a.csv", csv_row("d3"))  # the same size, a new time
    _age(ledger.land_csv("b.csv", csv_row("d40")))  # an old time, another size
    summary = ledger.ingest()
    assert (summary.files_ingested, summary.rows_accepted) == (2, 2)
    # A file that is gone is forgotten.
    assert ("b.csv",) in ledger.rows("SELECT path FROM inbox_hashes")
    (ledger.inbox / "b.csv").unlink()
    ledger.ingest()
    assert ("b.csv",) not in ledger.rows("SELECT path FROM inbox_hashes")


def test_a_file_hashed_just_after_it_was_written_is_read_again(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rewrite within the timestamp's resolution would keep its time: the hash of a file read
    # within the margin of its last change is not kept.
    monkeypatch.setitem(ingest.TRUST_MARGIN_NS, "local", 3600 * 10**9)
    ledger.land_csv("2026-03-01.csv", csv_row("d1"))
    ledger.ingest()
    _rewrite_keeping_time(ledger, "2026-03-01.csv", csv_row("d2"))
    assert ledger.ingest().files_ingested == 1
    assert ledger.rows("SELECT count(*) FROM deltas") == [(2,)]


def test_a_late_delta_refreshes_its_month_and_later_ones_only(ledger: Ledger) -> None:
    ledger.land_csv(
        "2026-05-31.csv",
        csv_row("a", amount="10", occurred_at="2026-03-05T00:00:00Z"),
        csv_row("b", amount="20", occurred_at="2026-04-05T00:00:00Z"),
        csv_row("c", amount="40", occurred_at="2026-05-05T00:00:00Z"),
    )
    ledger.ingest()
    [(first,)] = ledger.rows("SELECT DISTINCT updated_run_id FROM customer_periods")
    ledger.land_csv(
        "2026-06-01.csv", csv_row("late", amount="-5", occurred_at="2026-04-30T23:00:00Z")
    )
    ledger.ingest()
    rows = ledger.rows(
        "SELECT period, opening_balance, closing_balance, updated_run_id FROM customer_periods "
        "ORDER BY period"
    )
    assert [(p, float(o), float(c)) for p, o, c, _ in rows] == [
        ("2026-03", 0, 10),
        ("2026-04", 10, 25),
        ("2026-05", 25, 65),
    ]
    assert rows[0][3] == first != rows[1][3] == rows[2][3]
