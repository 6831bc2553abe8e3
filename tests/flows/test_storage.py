"""Object storage edge cases found by a review of the S3 paths: odd keys in an S3 inbox, an
endpoint without a scheme, permanent errors, and an output root that holds nothing yet."""

from __future__ import annotations

import pytest

from flows.errors import ConfigError
from flows.storage import _is_transient, open_location
from tests.conftest import Ledger, csv_row


def test_every_s3_key_is_read_under_its_own_name_or_refused(ledger: Ledger, s3_bucket: str) -> None:
    """An S3 key is any string. `in/a/../ok.csv` was read as `in/ok.csv` (its own rows lost,
    counted as a duplicate file), `in/../x.csv` was taken for a hidden name, and `in/a//x.csv`
    stopped every run. S3 clients cannot read keys with `.`, `..` or empty segments under their
    own name: they are refused whole, every run, and the others are read."""
    import boto3

    client = boto3.client("s3", endpoint_url=open_location_endpoint())
    readable = ["in/ok.csv", "in/back\\slash.csv", "in/sp ace.csv"]
    odd = ["in/a/../ok.csv", "in/../up.csv", "in/./dot.csv", "in/a//double.csv"]
    for number, key in enumerate(readable + odd):
        row = csv_row(f"d{number}", occurred_at="2026-03-01T00:00:00Z")
        client.put_object(Bucket=s3_bucket, Key=key, Body=f"{HEADER}\n{row}\n".encode())
    ledger.settings = ledger.settings.with_overrides(inbox=f"s3://{s3_bucket}/in")
    for _ in range(2):
        summary = ledger.ingest()
        assert summary.files_seen == len(readable + odd)
        assert summary.files_quarantined == len(odd)
    assert sorted(p for (p,) in ledger.rows("SELECT path FROM ingested_files")) == sorted(
        key.removeprefix("in/") for key in readable
    )
    assert ledger.rows("SELECT delta_id FROM deltas ORDER BY 1") == [("d0",), ("d1",), ("d2",)]
    refused = ledger.rows("SELECT file, code, message FROM quarantine ORDER BY file")
    assert {(file, code) for file, code, _ in refused} == {
        (key.removeprefix("in/"), "UNREADABLE_FILE") for key in odd
    }
    assert len(refused) == 2 * len(odd)  # every run says so again, until they are renamed
    assert all("rename it" in message for _, _, message in refused)


def open_location_endpoint() -> str:
    import os

    return os.environ["AWS_ENDPOINT_URL"]


HEADER = (
    "tenant_id,environment,delta_id,customer_id,amount,reason,reference_id,status,"
    "occurred_at,metadata"
)


@pytest.mark.parametrize("endpoint", ["localhost:9000", "127.0.0.1:9000", "ftp://host:21"])
def test_an_endpoint_without_its_scheme_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    """Found by a review: `localhost:9000` ended in a traceback, `127.0.0.1:9000` in an SSL
    error after 75 s of retries."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL .* give its scheme"):
        open_location("s3://bucket/prefix")


@pytest.mark.parametrize(
    "message",
    [
        "AWS Error NO_SUCH_BUCKET during ListObjectsV2 operation: The bucket does not exist",
        "AWS Error ACCESS_DENIED during HeadBucket operation: No response body.",
        "AWS Error INVALID_ACCESS_KEY_ID during PutObject operation",
    ],
)
def test_permanent_errors_as_pyarrow_words_them_are_not_retried(message: str) -> None:
    """The markers spelled S3's way (NoSuchBucket) never matched pyarrow's (NO_SUCH_BUCKET)."""
    assert not _is_transient(OSError(f"{message} (HTTP status 500, NETWORK_CONNECTION)"))


def test_an_output_root_without_a_publication_gets_everything(ledger: Ledger, tmp_path) -> None:
    """Found by a review: a warehouse pointed at a new output root published only what its
    last run changed there (24 of 80 receipts, and no JWKS)."""
    first, second = tmp_path / "first", tmp_path / "second"
    ledger.land_csv(
        "a.csv",
        csv_row("d1", customer="alice", occurred_at="2026-02-01T00:00:00Z"),
        csv_row("d2", customer="bob", occurred_at="2026-03-01T00:00:00Z"),
    )
    from datetime import date

    ledger.settings = ledger.settings.with_overrides(output=str(first))
    ledger.run(as_of=date(2026, 4, 2))
    ledger.land_csv("b.csv", csv_row("d3", customer="alice", occurred_at="2026-03-02T00:00:00Z"))
    ledger.settings = ledger.settings.with_overrides(output=str(second))
    ledger.run(as_of=date(2026, 4, 2))

    def published(root) -> set[str]:
        names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
        return {n for n in names if not n.startswith(("manifests/", "quarantine/", "parquet/"))}

    assert "receipts/acme/production/bob/2026-03.json" in published(second)
    assert ".well-known/jwks.json" in published(second)
    assert published(first) <= published(second)
    # Back to the first root, which missed the second run: it gets everything again, and
    # then, holding the last publication, only what changes.
    ledger.settings = ledger.settings.with_overrides(output=str(first))
    ledger.run(as_of=date(2026, 4, 2))
    assert published(first) == published(second)
    same = (first / "receipts/acme/production/alice/2026-03.json").read_bytes()
    assert same == (second / "receipts/acme/production/alice/2026-03.json").read_bytes()
    ledger.land_csv("c.csv", csv_row("d4", customer="carol", occurred_at="2026-03-03T00:00:00Z"))
    report = ledger.run(as_of=date(2026, 4, 2))
    assert "receipts/acme/production/carol/2026-03.json" in published(first)
    # Carol's March alone: activity, receipt, two batch exports, three Parquet parts, quarantine.
    assert (report.publication.files, report.publication.unchanged) == (8, 1)  # 1: the JWKS


def test_a_backfill_into_a_new_output_root_publishes_everything(ledger: Ledger, tmp_path) -> None:
    """Found by a review of the change above: a backfill (which publishes its months only) into
    a new root left it partial, and the next run, finding the backfill's LATEST, never
    completed it. Each publication is recorded, so a backfill's own month-by-month publications
    do not look like a new root to one another."""
    from datetime import date

    from flows.backfill import run_backfill

    first, second = tmp_path / "first", tmp_path / "second"
    ledger.land_csv(
        "a.csv",
        csv_row("d1", customer="alice", occurred_at="2026-01-05T00:00:00Z"),
        csv_row("d2", customer="bob", occurred_at="2026-02-05T00:00:00Z"),
        csv_row("d3", customer="carol", occurred_at="2026-03-05T00:00:00Z"),
    )
    ledger.settings = ledger.settings.with_overrides(output=str(first))
    ledger.run(as_of=date(2026, 4, 2))
    ledger.settings = ledger.settings.with_overrides(output=str(second))
    report = run_backfill(
        ledger.settings,
        period_from="2026-02",
        period_to="2026-03",
        as_of=date(2026, 4, 2),
        orchestrated=False,
    )
    assert "receipts/acme/production/alice/2026-01.json" in published_paths(second)
    assert published_paths(first) <= published_paths(second)
    # The backfill's second month found the root as its first month left it: nothing more.
    assert report.periods[-1].files_written < 10
    ledger.land_csv("b.csv", csv_row("d4", customer="dan", occurred_at="2026-03-06T00:00:00Z"))
    again = ledger.run(as_of=date(2026, 4, 2))
    assert (again.publication.files, again.publication.unchanged) == (8, 1)


def published_paths(root) -> set[str]:
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    return {n for n in names if not n.startswith(("manifests/", "quarantine/", "parquet/"))}
