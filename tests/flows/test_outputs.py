"""Outputs (SPEC sections 5 and 6) on a local folder and on a real S3-compatible server.

One class, two backends: the `outputs` fixture is the only thing that differs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from flows.errors import StorageError
from flows.fingerprints import Customer
from flows.outputs import (
    PARQUET_TABLES,
    ShardWork,
    batch_checkpoint_files,
    build_shard,
    load_batch_checkpoints,
    load_shard,
)
from flows.packages import build_package
from flows.publish import LATEST, read_latest
from flows.receipts import build_receipt
from flows.signing import active_signing_key, jwks
from flows.storage import PENDING, STAGING, Location, open_location
from flows.verify import parse_json, verify_document
from flows.warehouse import connect
from tests.conftest import Ledger, csv_row
from transforms import merkle

AS_OF = date(2026, 5, 2)
FIRST = [
    csv_row("a1", customer="alice", amount="100", occurred_at="2026-02-03T10:00:00Z"),
    csv_row(
        "a2",
        customer="alice",
        amount="-12.5",
        reason='=HYPERLINK("x")',
        occurred_at="2026-03-01T00:10:00+01:00",
    ),
    csv_row(
        "a3",
        customer="alice",
        amount="-0.000001",
        status="pending",
        occurred_at="2026-03-05T00:00:00Z",
    ),
    csv_row(
        "b1",
        customer="bob:2",
        amount="50",
        reason='quoted "text", comma\nand a line',
        metadata='{"plan":"pro","é":"ü"}',
        occurred_at="2026-03-15T00:00:00Z",
    ),
    csv_row(
        "b2", customer="bob:2", amount="-7", status="failed", occurred_at="2026-04-01T00:00:00Z"
    ),
    csv_row(
        "s1",
        environment="sandbox",
        customer="alice",
        amount="1",
        occurred_at="2026-04-10T00:00:00Z",
    ),
    csv_row("b3", customer="bob:2", amount="-20.25", occurred_at="2026-04-02T00:00:00Z"),
    csv_row("b4", customer="bob:2", amount="3", occurred_at="2026-04-03T00:00:00Z"),
    csv_row("bad", amount="1e3"),
]
SECOND = [csv_row("a3", customer="alice", amount="-0.000001", occurred_at="2026-03-05T00:00:00Z")]


class Outputs:
    def __init__(self, ledger: Ledger, root: str) -> None:
        self.ledger = ledger
        self.root = root
        self.location: Location = open_location(root)

    def read(self, path: str) -> bytes:
        return self.location.read_bytes(path)

    def manifest(self) -> dict[str, Any]:
        latest = read_latest(self.location)
        assert latest is not None
        return latest

    def manifest_files(self, manifest: dict[str, Any] | None = None) -> pl.DataFrame:
        manifest = manifest or self.manifest()
        return pl.read_parquet(io.BytesIO(self.read(manifest["files"]["path"])))

    def staging_left(self) -> list[str]:
        """Whatever still waits to be moved into place: below the staging folder, or beside
        its place on a disk (neither of which `list_files` shows)."""
        below = pafs.FileSelector(self.location.root, recursive=True)
        return [
            info.path
            for info in self.location.fs.get_file_info(below)
            if f"/{STAGING}/" in info.path or info.path.endswith(PENDING)
        ]

    def dataset(self, table: str) -> ds.Dataset:
        base = self.location.path(f"parquet/{table}")
        return ds.dataset(base, filesystem=self.location.fs, format="parquet", partitioning="hive")


@pytest.fixture(params=["local", "s3"])
def outputs(request: pytest.FixtureRequest, ledger: Ledger) -> Outputs:
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        root = f"s3://{bucket}/published"
    else:
        root = str(ledger.settings.data_dir / "output")
    ledger.settings = ledger.settings.with_overrides(output=root)
    ledger.land_csv("2026-05-01.csv", *FIRST)
    ledger.run(as_of=AS_OF)
    return Outputs(ledger, root)


def warehouse(outputs: Outputs, query: str) -> list[tuple]:
    return outputs.ledger.rows(query)


class TestOutputs:
    def test_layout(self, outputs: Outputs) -> None:
        paths = set(outputs.manifest_files()["path"].to_list())
        run_id = outputs.manifest()["publicationId"]
        for path in [
            ".well-known/jwks.json",
            f"quarantine/{run_id}.csv",
            "exports/acme/production/customers/alice/2026-02.csv",
            "exports/acme/production/customers/bob:2/2026-03.csv",
            "exports/acme/sandbox/customers/alice/2026-04.csv",
            "exports/acme/production/batch-checkpoints/2026-03.csv",
            "exports/acme/production/batch-checkpoints/2026-03.json",
            "receipts/acme/production/bob:2/2026-04.json",
            f"parquet/deltas/tenant=acme/environment=production/period=2026-03/part-{run_id}-0000.parquet",
            f"parquet/customer_periods/tenant=acme/environment=sandbox/period=2026-04/part-{run_id}-0000.parquet",
            f"parquet/checkpoints/tenant=acme/environment=production/period=2026-02/part-{run_id}-0000.parquet",
        ]:
            assert path in paths, path
            assert outputs.location.exists(path), path
        assert not any(p.startswith("_staging") for p in paths)
        assert outputs.staging_left() == []

    def test_manifest_describes_every_file(self, outputs: Outputs) -> None:
        files = outputs.manifest_files()
        assert files.height == outputs.manifest()["totals"]["files"]
        for path, size, rows, sha in files.iter_rows():
            data = outputs.read(path)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), path
            if path.endswith(".parquet"):
                assert pq.read_metadata(io.BytesIO(data)).num_rows == rows
            elif path.endswith(".csv"):
                assert len(list(csv.reader(io.StringIO(data.decode(), newline="")))) == rows + 1
        listed = {e["path"] for entries in outputs.manifest()["parquet"].values() for e in entries}
        assert listed == {p for p in files["path"] if p.endswith(".parquet")}

    def test_activity_csv(self, outputs: Outputs) -> None:
        data = outputs.read("exports/acme/production/customers/alice/2026-03.csv")
        assert not data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        # a2 is 2026-02-29T23:10Z, so February; March holds a3 only
        assert [(r["delta_id"], r["amount"], r["status"], r["leaf_index"]) for r in rows] == [
            ("a3", "-0.000001", "pending", "")
        ]
        feb = list(
            csv.DictReader(
                io.StringIO(
                    outputs.read("exports/acme/production/customers/alice/2026-02.csv").decode(),
                    newline="",
                )
            )
        )
        assert [(r["delta_id"], r["reason"], r["occurred_at"]) for r in feb] == [
            ("a1", "usage", "2026-02-03T10:00:00.000000Z"),
            ("a2", '\'=HYPERLINK("x")', "2026-02-28T23:10:00.000000Z"),
        ]
        bob = list(
            csv.DictReader(
                io.StringIO(
                    outputs.read("exports/acme/production/customers/bob:2/2026-03.csv").decode(),
                    newline="",
                )
            )
        )
        assert bob[0]["reason"] == 'quoted "text", comma\nand a line'
        assert json.loads(bob[0]["metadata"]) == {"plan": "pro", "é": "ü"}

    def test_batch_exports_verify(self, outputs: Outputs) -> None:
        keys = json.loads(outputs.read(".well-known/jwks.json"))
        document = json.loads(
            outputs.read("exports/acme/production/batch-checkpoints/2026-03.json")
        )
        kind, checks = verify_document(document, keys)
        assert kind == "batch-export" and checks.ok, [c for c in checks if not c.ok]
        assert [c["body"]["customerId"] for c in document["checkpoints"]] == ["alice", "bob:2"]
        rows = list(
            csv.DictReader(
                io.StringIO(
                    outputs.read("exports/acme/production/batch-checkpoints/2026-03.csv").decode(),
                    newline="",
                )
            )
        )
        snake = {
            "closingBalance": "closing_balance",
            "customerId": "customer_id",
            "openingBalance": "opening_balance",
            "tenantId": "tenant_id",
            "treeSize": "tree_size",
        }
        for row, entry in zip(rows, document["checkpoints"], strict=True):
            for key, value in entry["body"].items():
                assert row[snake.get(key, key)] == str(value)
            assert (row["checkpoint_id"], row["fingerprint"], row["created_at"]) == (
                entry["checkpointId"],
                entry["fingerprint"],
                entry["createdAt"],
            )

    def test_receipts_match_the_library_and_verify(self, outputs: Outputs) -> None:
        keys = json.loads(outputs.read(".well-known/jwks.json"))
        con = connect(outputs.ledger.settings.warehouse, read_only=True)
        try:
            for customer, period in [
                ("alice", "2026-02"),
                ("bob:2", "2026-03"),
                ("bob:2", "2026-04"),
            ]:
                published = json.loads(
                    outputs.read(f"receipts/acme/production/{customer}/{period}.json")
                )
                assert published == build_receipt(
                    con, Customer("acme", "production", customer), period
                )
                assert verify_document(published, keys)[1].ok
        finally:
            con.close()

    def test_bi_readers_agree_with_the_warehouse(self, outputs: Outputs) -> None:
        expected = warehouse(
            outputs, "SELECT count(*), sum(amount) FILTER (WHERE status = 'verified') FROM deltas"
        )[0]
        table = outputs.dataset("deltas").to_table()
        via_arrow = (
            table.num_rows,
            sum(
                Decimal(str(a))
                for a, s in zip(
                    table["amount"].to_pylist(), table["status"].to_pylist(), strict=True
                )
                if s == "verified"
            ),
        )
        assert via_arrow == expected
        assert set(table["tenant"].to_pylist()) == {"acme"}
        duck = duckdb.connect()
        duck.register("deltas_feed", outputs.dataset("deltas"))
        via_duckdb = duck.execute(
            "SELECT count(*), sum(amount) FILTER (WHERE status = 'verified') FROM deltas_feed"
        ).fetchone()
        assert via_duckdb == expected
        if not outputs.location.is_s3:
            glob = f"{outputs.root}/parquet/deltas/**/*.parquet"
            via_glob = duckdb.execute(
                f"SELECT count(*), sum(amount) FILTER (WHERE status = "
                f"'verified') FROM read_parquet('{glob}', hive_partitioning=1)"
            ).fetchone()
            assert via_glob == expected
            frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
        else:
            import os

            endpoint = os.environ["AWS_ENDPOINT_URL"]
            frame = pl.scan_parquet(
                f"{outputs.root}/parquet/deltas/**/*.parquet",
                hive_partitioning=True,
                storage_options={
                    "aws_endpoint_url": endpoint,
                    "aws_allow_http": "true",
                    "aws_access_key_id": "testing",
                    "aws_secret_access_key": "testing",
                    "aws_region": "us-east-1",
                },
            ).collect()
        via_polars = (frame.height, frame.filter(pl.col("status") == "verified")["amount"].sum())
        assert via_polars == expected
        assert frame["period"].unique().sort().to_list() == ["2026-02", "2026-03", "2026-04"]

    def test_a_nightly_run_rewrites_only_what_changed(self, outputs: Outputs) -> None:
        first = outputs.manifest()
        outputs.ledger.land_csv("2026-05-02.csv", *SECOND)
        outputs.ledger.run(as_of=AS_OF)
        second = outputs.manifest()
        assert second["previous"] == f"manifests/{first['publicationId']}.json"
        written = set(outputs.manifest_files(second)["path"].to_list())
        run_id = second["publicationId"]
        # The JWKS did not change, so it is not rewritten.
        assert written == {
            f"quarantine/{run_id}.csv",
            "exports/acme/production/customers/alice/2026-03.csv",
            "exports/acme/production/batch-checkpoints/2026-03.csv",
            "exports/acme/production/batch-checkpoints/2026-03.json",
            "receipts/acme/production/alice/2026-03.json",
            f"parquet/deltas/tenant=acme/environment=production/period=2026-03/part-{run_id}-0000.parquet",
            f"parquet/checkpoints/tenant=acme/environment=production/period=2026-03/part-{run_id}-0000.parquet",
            f"parquet/customer_periods/tenant=acme/environment=production/period=2026-03/part-{run_id}-0000.parquet",
        }
        # The old partition file is gone, the others are untouched and still listed.
        folder = "parquet/deltas/tenant=acme/environment=production"
        old = f"{folder}/period=2026-03/part-{first['publicationId']}-0000.parquet"
        assert not outputs.location.exists(old)
        feb = f"{folder}/period=2026-02/part-{first['publicationId']}-0000.parquet"
        assert feb in {e["path"] for e in second["parquet"]["deltas"]}
        assert outputs.location.exists(feb)
        table = outputs.dataset("deltas").to_table()
        assert table.num_rows == 8
        # A version's consistency proof from the one it supersedes is in the feed: from an
        # empty tree (a3 was pending) there is none to give.
        versions = pl.from_arrow(outputs.dataset("checkpoints").to_table()).filter(
            (pl.col("customer_id") == "alice") & (pl.col("period") == "2026-03")
        )
        old, new = versions.sort("version").rows(named=True)
        assert (old["consistency_proof"], old["tree_size"]) == (None, 0)
        assert (new["consistency_proof"], new["supersedes"]) == ("[]", old["fingerprint"])
        # Nothing is left in staging (where a local disk links replaced files aside).
        assert outputs.staging_left() == []
        march = outputs.read("exports/acme/production/customers/alice/2026-03.csv").decode()
        assert "a3," in march

    def test_verification_package(self, outputs: Outputs) -> None:
        keys = jwks(outputs.ledger.settings)
        package = self._package(outputs)
        kind, checks = verify_document(package, keys)
        assert kind == "package" and checks.ok, [c for c in checks if not c.ok]
        assert [e["index"] for e in package["entries"]] == [0, 1]
        assert package["chain"][0]["fingerprint"] == package["checkpoint"]["body"]["previous"]
        assert package["packageId"].startswith("vpk_") and len(package["packageId"]) == 30
        stored = json.loads(
            outputs.read(f"packages/acme/production/bob:2/{package['packageId']}.json")
        )
        assert stored == package

    @pytest.mark.parametrize(
        ("tamper", "fails"),
        [
            ("leaf", "entry 0: leafHash"),
            ("leaf_and_hash", "entry 0: proof"),
            ("proof", "entry 0: proof"),
            ("index", "sample: indices"),
            ("nonce", "sample: seed"),
            ("signature", "package: signature"),
            ("chain", "chain[0]: balances"),
            ("package_id", "package: packageId"),
        ],
    )
    def test_a_changed_byte_fails_the_package(
        self, outputs: Outputs, tamper: str, fails: str
    ) -> None:
        package = self._package(outputs)
        entry = package["entries"][0]
        if tamper == "leaf":
            entry["leaf"]["amount"] = "51"
        elif tamper == "leaf_and_hash":
            entry["leaf"]["amount"] = "51"
            from transforms import merkle
            from transforms.jcs import canonicalize

            entry["leafHash"] = merkle.leaf_hash(canonicalize(entry["leaf"])).hex()
        elif tamper == "proof":
            entry["proof"][0] = ("0" if entry["proof"][0][0] != "0" else "1") + entry["proof"][0][
                1:
            ]
        elif tamper == "index":
            entry["index"] = 1
        elif tamper == "nonce":
            package["sample"]["nonce"] += "x"
        elif tamper == "signature":
            signature = package["signature"]
            package["signature"] = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        elif tamper == "chain":
            package["chain"][0]["body"]["closingBalance"] = "1"
        else:
            package["packageId"] = "vpk_" + "a" * 25 + "b"  # 130 bits, not 128
        _, checks = verify_document(package, jwks(outputs.ledger.settings))
        failed = [f"{c.name}" for c in checks if not c.ok]
        assert fails in failed, failed
        if tamper != "signature":
            assert "package: signature" in failed  # any change breaks the package signature

    @pytest.mark.parametrize(
        ("where", "value", "says"),
        [
            (("entries", 0), 5, "entries[0] is not an object"),
            (("checkpoint",), "x", "checkpoint is not an object"),
            (("chain", 0, "body"), "x", "chain[0].body is not an object"),
            (("checkpoint", "fingerprint"), 5, "checkpoint.fingerprint is not a string"),
            (("sample",), [], "sample is not an object"),
        ],
    )
    def test_a_package_of_the_wrong_shape_fails_a_check(
        self, outputs: Outputs, where: tuple, value: object, says: str
    ) -> None:
        """`verify` says what is wrong and where; it used to end in a traceback."""
        package = self._package(outputs)
        parent = package
        for step in where[:-1]:
            parent = parent[step]
        parent[where[-1]] = value
        _, checks = verify_document(package, jwks(outputs.ledger.settings))
        [failed] = [c for c in checks if c.name == "document"]
        assert not failed.ok and says in failed.detail, failed.detail

    def test_a_malformed_jwks_is_a_failed_check(self, outputs: Outputs) -> None:
        package = self._package(outputs)
        _, checks = verify_document(package, {"keys": "x"})
        assert [c.name for c in checks if not c.ok][:2] == ["jwks", "package: signature"]

    def test_a_balance_too_large_for_any_decimal_fails_a_check(self, outputs: Outputs) -> None:
        """A receipt is not signed as a whole: anyone can hand one over with `1e999999999`."""
        package = self._package(outputs)
        package["checkpoint"]["body"]["credits"] = "1e999999999"
        _, checks = verify_document(package, jwks(outputs.ledger.settings))
        failed = {c.name: c.detail for c in checks if not c.ok}
        assert "not a decimal" in failed["checkpoint: body"]

    def test_a_key_twice_in_one_object_is_refused(self) -> None:
        """One reader takes the first `amount`, another the last: verify reads neither."""
        with pytest.raises(ValueError, match="'amount' appears twice"):
            parse_json('{"leaves": [{"amount": "1000000", "amount": "100"}]}')
        assert parse_json('{"a": {"b": 1}, "b": 2}') == {"a": {"b": 1}, "b": 2}

    def test_a_jwks_whose_kid_is_not_its_keys_is_refused(self, outputs: Outputs) -> None:
        package = self._package(outputs)
        keys = jwks(outputs.ledger.settings)
        for key in keys["keys"]:
            key["kid"] = "0" * 16
        _, checks = verify_document(package, keys)
        failed = {c.name: c.detail for c in checks if not c.ok}
        assert "kid is not the first 16 hex of SHA-256" in failed["jwks"]
        assert "package: signature" in failed

    def test_a_changed_package_says_which_claim_differs(self, outputs: Outputs) -> None:
        package = self._package(outputs)
        package["sample"]["nonce"] += "x"
        _, checks = verify_document(package, jwks(outputs.ledger.settings))
        [signature] = [c for c in checks if c.name == "package: signature"]
        assert "changed after it was signed" in signature.detail
        assert "the document gives" in signature.detail

    def _package(self, outputs: Outputs) -> dict[str, Any]:
        from flows.packages import store_package

        con = connect(outputs.ledger.settings.warehouse, read_only=True)
        try:
            who = Customer("acme", "production", "bob:2")
            package = build_package(
                con,
                who,
                "2026-04",
                sample_size=5,
                nonce="n",
                key=active_signing_key(outputs.ledger.settings),
            )
        finally:
            con.close()
        store_package(outputs.location, who, package)
        return package

    @pytest.mark.parametrize("fail_at", ["parquet", "new", "staging", "promote", "latest"])
    def test_a_crash_while_publishing_keeps_the_previous_state(
        self, outputs: Outputs, fail_at: str
    ) -> None:
        before = outputs.manifest()
        before_files = outputs.manifest_files(before)
        scanned = {t: outputs.dataset(t).to_table() for t in PARQUET_TABLES}
        outputs.ledger.land_csv("2026-05-02.csv", *SECOND)

        class Killed(Exception):
            pass

        write, write_new, move = Location.write_bytes, Location.write_new, Location.promote

        def failing(relative: str) -> None:
            if (
                (fail_at == "new" and relative.startswith("quarantine/"))
                or (fail_at == "staging" and relative.startswith(f"{STAGING}/"))
                or (fail_at == "staging" and relative.endswith(PENDING))
                or (fail_at == "latest" and relative == LATEST)
            ):
                raise Killed(relative)

        def failing_write(self: Location, relative: str, data: bytes, **options: bool) -> None:
            failing(relative)
            write(self, relative, data, **options)

        def failing_write_new(self: Location, relative: str, data: bytes, **options: bool) -> bool:
            failing(relative)
            return write_new(self, relative, data, **options)

        def failing_move(self: Location, source: str, target: str) -> None:
            if (fail_at == "promote" and "batch-checkpoints" in target) or (
                fail_at == "parquet" and target.startswith("parquet/customer_periods")
            ):
                raise Killed(target)
            move(self, source, target)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Location, "write_bytes", failing_write)
            patch.setattr(Location, "write_new", failing_write_new)
            patch.setattr(Location, "promote", failing_move)
            with pytest.raises(Killed):
                outputs.ledger.run(as_of=AS_OF)

        assert outputs.manifest()["publicationId"] == before["publicationId"]
        for path, size, _, sha in before_files.iter_rows():
            if path.endswith(".parquet") or fail_at not in ("promote", "parquet", "latest"):
                data = outputs.read(path)
                assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), path
        if fail_at not in ("parquet", "latest"):
            # A directory scan of the BI feed sees the parts as they were: new parts wait
            # hidden until the last renames before LATEST switches.
            for table, rows in scanned.items():
                assert outputs.dataset(table).to_table().equals(rows), table
        # The next run publishes what the crashed one could not.
        outputs.ledger.run(as_of=AS_OF)
        after = outputs.manifest()
        assert len(after["runs"]) == 2
        for path, size, _, sha in outputs.manifest_files(after).iter_rows():
            data = outputs.read(path)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), path
        march = list(
            csv.DictReader(
                io.StringIO(
                    outputs.read("exports/acme/production/customers/alice/2026-03.csv").decode(),
                    newline="",
                )
            )
        )
        assert [(r["delta_id"], r["status"]) for r in march] == [("a3", "verified")]
        assert outputs.dataset("deltas").to_table().num_rows == 8
        assert outputs.staging_left() == []


def test_the_checkpoints_feed_proves_each_version_extends_the_last(ledger: Ledger) -> None:
    """Found by a review: the proofs were kept in the warehouse only, so an auditor with the
    published outputs could not check that a new version's tree extends the old one."""
    march = [f"2026-03-{day:02d}T00:00:00Z" for day in range(1, 8)]
    ledger.land_csv("a.csv", *(csv_row(f"d{i}", occurred_at=t) for i, t in enumerate(march[:3])))
    ledger.run(as_of=date(2026, 4, 2))
    ledger.land_csv("b.csv", *(csv_row(f"e{i}", occurred_at=t) for i, t in enumerate(march[3:])))
    ledger.run(as_of=date(2026, 4, 3))
    feed = pl.read_parquet(
        str(ledger.settings.data_dir / "output/parquet/checkpoints/**/*.parquet")
    ).sort("version")
    old, new = feed.rows(named=True)
    assert (old["tree_size"], new["tree_size"], new["supersedes"]) == (3, 7, old["fingerprint"])
    assert old["consistency_proof"] is None
    proof = [bytes.fromhex(h) for h in json.loads(new["consistency_proof"])]
    assert len(proof) == 4  # RFC 6962 PROOF(3, D[7]): D[2], D[3], MTH(D[0:2]), MTH(D[4:7])
    merkle.verify_consistency(  # raises when the proof does not hold
        3, 7, bytes.fromhex(old["root"]), bytes.fromhex(new["root"]), proof
    )


def test_new_files_go_straight_to_their_place_but_never_over_a_file(ledger: Ledger) -> None:
    """A file no publication has made is written in place at once (whole), unless something
    is already at its path: a file the inventory does not know (left by a crash while moving
    files into place, or put there by hand) is replaced only when waiting files are moved in,
    after every file has been written."""
    root = ledger.settings.data_dir / "output"
    ledger.settings = ledger.settings.with_overrides(output=str(root))
    ledger.land_csv("2026-05-01.csv", *FIRST)
    foreign = "exports/acme/production/customers/alice/2026-02.csv"
    (root / foreign).parent.mkdir(parents=True)
    (root / foreign).write_bytes(b"not ours")

    class Killed(Exception):
        pass

    def crash_at_the_first_move(self: Location, source: str, target: str) -> None:
        raise Killed(target)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Location, "promote", crash_at_the_first_move)
        with pytest.raises(Killed):
            ledger.run(as_of=AS_OF)
    assert (root / foreign).read_bytes() == b"not ours"
    receipt = root / "receipts/acme/production/bob:2/2026-04.json"
    assert json.loads(receipt.read_bytes())["checkpoint"]["body"]["customerId"] == "bob:2"
    # The foreign file's export waits beside it; the Parquet parts wait in their folders.
    waiting = sorted(p.relative_to(root).as_posix() for p in root.rglob(f"*{PENDING}"))
    assert [p for p in waiting if not p.startswith("parquet/")] == [
        f"{Path(foreign).parent.as_posix()}/.2026-02.csv{PENDING}"
    ]
    assert waiting[-1].endswith(f"/.part-0000.parquet{PENDING}")
    assert not list((root / "parquet").rglob("*.parquet"))  # nothing a scan could see
    assert not (root / STAGING).exists()

    ledger.run(as_of=AS_OF)
    outputs = Outputs(ledger, str(root))
    for path, size, _, sha in outputs.manifest_files().iter_rows():
        data = outputs.read(path)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha), path
    assert (root / foreign).read_bytes().startswith(b"delta_id,")
    assert outputs.staging_left() == []
    hidden = [p for p in root.rglob(".*") if p.name != ".well-known"]
    assert hidden == []  # no temporary file is left anywhere


def test_feeds_and_exports_are_in_order_whatever_the_landing_order(ledger: Ledger) -> None:
    """Deltas land in no particular order; the activity export lists a customer's deltas by
    occurredAt and deltaId, and each Parquet part is sorted by customer (then occurredAt and
    deltaId, or version)."""
    root = ledger.settings.data_dir / "output"
    ledger.settings = ledger.settings.with_overrides(output=str(root))
    times = ["2026-04-09T00:00:00Z", "2026-04-02T00:00:00Z", "2026-04-05T00:00:00Z"]
    rows = [
        csv_row(f"{delta}{n}", customer=customer, occurred_at=times[n % 3])
        for n in range(6)
        for customer, delta in [("zed", "z"), ("amy", "y"), ("max", "x")]
    ]
    ledger.land_csv("2026-04-10.csv", *rows)
    ledger.run(as_of=AS_OF)
    ledger.land_csv("2026-04-11.csv", csv_row("a9", customer="amy", occurred_at=times[0]))
    ledger.run(as_of=AS_OF)

    export = (root / "exports/acme/production/customers/amy/2026-04.csv").read_text()
    listed = [(r["occurred_at"], r["delta_id"]) for r in csv.DictReader(io.StringIO(export))]
    assert listed == sorted(listed) and len(listed) == 7
    partition = "tenant=acme/environment=production/period=2026-04"
    for table, order in [
        ("deltas", ["customer_id", "occurred_at", "delta_id"]),
        ("checkpoints", ["customer_id", "version"]),
        ("customer_periods", ["customer_id"]),
    ]:
        (part,) = (root / "parquet" / table / partition).glob("*.parquet")
        feed = pl.read_parquet(part).select(order)
        assert feed.height >= 3, table
        assert feed.equals(feed.sort(order)), table


def test_write_new_writes_only_where_nothing_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = open_location(str(tmp_path))
    assert location.write_new("a/b/new.json", b"whole")
    assert (tmp_path / "a/b/new.json").read_bytes() == b"whole"
    assert not location.write_new("a/b/new.json", b"other")
    assert (tmp_path / "a/b/new.json").read_bytes() == b"whole"
    assert sorted(p.name for p in (tmp_path / "a/b").iterdir()) == ["new.json"]
    # A folder made by another Location (another shard) is written into without being made.
    assert open_location(str(tmp_path)).write_new("a/b/next.json", b"next")
    assert (tmp_path / "a/b/next.json").read_bytes() == b"next"
    with pytest.raises(StorageError):
        location.write_new("../outside.json", b"x")
    # A platform without anonymous files: nothing is written, the caller stages the file.
    monkeypatch.delattr("os.O_TMPFILE")
    assert not location.write_new("a/b/other.json", b"x")
    assert not (tmp_path / "a/b/other.json").exists()


def test_a_permanent_storage_error_fails_the_run_clearly(ledger: Ledger, s3_bucket: str) -> None:
    ledger.settings = ledger.settings.with_overrides(output="s3://no-such-bucket-here/out")
    ledger.land_csv("2026-05-01.csv", *FIRST)
    with pytest.raises(StorageError) as failure:
        ledger.run(as_of=AS_OF)
    assert "no-such-bucket-here" in failure.value.message
    # Found before the run changed anything (it used to be found at publish time, after the
    # ingest and checkpoints had been committed, naming a staging key).
    assert "output s3://no-such-bucket-here/out does not exist" in failure.value.message
    assert not ledger.settings.warehouse.exists()


def test_batch_exports_are_the_same_from_a_whole_partition_or_the_flow(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard that holds a whole partition builds its batch exports from the checkpoints it
    loaded for the feed; a partition split into shards has them built by the flow. Both give
    the same bytes."""
    root = ledger.settings.data_dir / "output"
    ledger.settings = ledger.settings.with_overrides(output=str(root))
    ledger.land_csv("2026-05-01.csv", *FIRST)
    monkeypatch.setattr("flows.publish.SHARD_DELTAS", 1)  # a shard per delta: both ways occur
    report = ledger.run(as_of=AS_OF)

    con = connect(ledger.settings.warehouse, read_only=True)
    try:
        partitions = pl.DataFrame(
            con.execute(
                "SELECT DISTINCT tenant_id, environment, period FROM checkpoints ORDER BY ALL"
            ).fetchall(),
            schema=["tenant_id", "environment", "period"],
            orient="row",
        )
        by_flow = {
            f.path: f.data for f in batch_checkpoint_files(load_batch_checkpoints(con, partitions))
        }
        by_shard = {}
        for tenant, environment, period in partitions.rows():
            work = ShardWork(
                tenant_id=tenant,
                environment=environment,
                period=period,
                shard=0,
                shards=1,
                tables=frozenset({"checkpoints"}),
                activity=frozenset(),
                receipts=frozenset(),
            )
            files = build_shard(load_shard(con, work), "p")
            by_shard |= {f.path: f.data for f in files if f.kind == "fixed"}
        split = con.execute(
            "SELECT count(*) FROM deltas WHERE status = 'verified' "
            "GROUP BY tenant_id, environment, period HAVING count(*) > 1"
        ).fetchall()
    finally:
        con.close()
    assert split and report.publication.shards > partitions.height
    assert by_shard == by_flow and len(by_flow) == 2 * partitions.height
    for path, data in by_flow.items():
        assert (root / path).read_bytes() == data, path


def test_batch_export_json_is_the_document_of_its_rows() -> None:
    """The batch JSON is assembled as text; it must parse to exactly the documented object,
    whatever characters the partition's names hold."""
    created = datetime(2026, 4, 1, 12, 30, 0, 123456, tzinfo=UTC)
    bodies = ['{"customerId":"ann","note":"é \\"q\\""}', '{"customerId":"bo\\\\b"}']
    latest = pl.DataFrame(
        {
            "tenant_id": ['a"c\\mé'] * 2,
            "environment": ["production"] * 2,
            "customer_id": ["ann", "bo\\b"],
            "period": ["2026-03"] * 2,
            "checkpoint_id": ["ckpt_1", "ckpt_2"],
            "fingerprint": ["ab" * 32, "cd" * 32],
            "body": bodies,
            "signature": ["eyJh.eyJi.c2ln", "eyJh.eyJi.c2lo"],
            "created_at": [created] * 2,
            "tree_size": [1, 1],
            "version": [1, 1],
            **{name: ["00" * 32] * 2 for name in ("root", "previous", "supersedes")},
            **{
                name: [Decimal(0)] * 2
                for name in ("opening_balance", "credits", "debits", "closing_balance")
            },
        }
    )
    files = {f.path.rsplit(".", 1)[1]: f for f in batch_checkpoint_files(latest)}
    assert json.loads(files["json"].data) == {
        "tenantId": 'a"c\\mé',
        "environment": "production",
        "period": "2026-03",
        "checkpoints": [
            {
                "checkpointId": f"ckpt_{n}",
                "fingerprint": fingerprint,
                "body": json.loads(body),
                "signature": signature,
                "createdAt": "2026-04-01T12:30:00.123456Z",
            }
            for n, fingerprint, body, signature in zip(
                (1, 2), latest["fingerprint"], bodies, latest["signature"], strict=True
            )
        ],
    }
