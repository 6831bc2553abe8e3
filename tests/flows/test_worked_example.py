"""SPEC sections 3-4 reproduced byte for byte: ../shared/vectors/tallyproof_examples.json."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from flows.checkpoints import tree_leaf_hashes
from flows.warehouse import connect
from tests.conftest import SHARED, Ledger
from transforms import merkle
from transforms.checkpoints import KEY
from transforms.jcs import canonicalize
from transforms.leaves import leaf_object

EXAMPLE = json.loads((SHARED / "vectors" / "tallyproof_examples.json").read_text())
FIELDS = [
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
]


def landing_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow(
            [
                "" if row[f] is None else json.dumps(row[f]) if f == "metadata" else row[f]
                for f in FIELDS
            ]
        )
    return out.getvalue()


@pytest.fixture
def example(settings) -> Ledger:
    return Ledger(settings.with_overrides(salt_key=EXAMPLE["salt_key"]))


def leaves_by_tree(ledger: Ledger) -> dict[str, list[dict]]:
    con = connect(ledger.settings.warehouse, read_only=True)
    try:
        rows = con.sql(
            "SELECT *, occurred_at AS occurred_at_utc FROM deltas "
            "WHERE status = 'verified' ORDER BY customer_id, period, leaf_index"
        ).pl()
        trees = rows.select(KEY).unique(maintain_order=True)
        hashes = tree_leaf_hashes(con, trees)
    finally:
        con.close()
    out: dict[str, list[dict]] = {}
    for row, hashed in zip(rows.to_dicts(), hashes.to_dicts(), strict=True):
        out.setdefault(f"{row['customer_id']}/{row['period']}", []).append(
            {"object": leaf_object(row), "hash": hashed["leaf_hash"]}
        )
    return out


def checkpoint_rows(ledger: Ledger) -> list[dict]:
    return [
        dict(
            zip(
                [
                    "customer_id",
                    "period",
                    "version",
                    "body",
                    "fingerprint",
                    "checkpoint_id",
                    "consistency_proof",
                ],
                r,
                strict=True,
            )
        )
        for r in ledger.rows(
            "SELECT customer_id, period, version, body, fingerprint, "
            "checkpoint_id, consistency_proof FROM checkpoints "
            "ORDER BY customer_id, period, version"
        )
    ]


@pytest.mark.parametrize("through", [0, 1])
def test_worked_example(example: Ledger, through: int) -> None:
    for run in EXAMPLE["runs"][: through + 1]:
        for file in run["files"]:
            example.land(file["name"], landing_csv(file["rows"]))
        example.run(as_of=date.fromisoformat(run["asOf"]))
    expected = EXAMPLE["runs"][through]

    leaves = leaves_by_tree(example)
    assert sorted(leaves) == sorted(expected["leavesByCustomerPeriod"])
    for tree, want in expected["leavesByCustomerPeriod"].items():
        got = leaves[tree]
        assert [g["object"] for g in got] == [w["leafObject"] for w in want]
        assert [canonicalize(g["object"]).decode() for g in got] == [w["leafBytes"] for w in want]
        hashes = [g["hash"] for g in got]
        assert [h.hex() for h in hashes] == [w["leafHash"] for w in want]
        tree_ = merkle.MerkleTree(hashes)
        for index, w in enumerate(want):
            assert [h.hex() for h in tree_.inclusion_path(index)] == w["inclusionProof"]

    got_checkpoints = checkpoint_rows(example)
    want_checkpoints = sorted(
        expected["checkpointsAllVersions"],
        key=lambda c: (c["customerId"], c["period"], c["body"]["version"]),
    )
    assert len(got_checkpoints) == len(want_checkpoints)
    for got, want in zip(got_checkpoints, want_checkpoints, strict=True):
        assert got["body"] == want["bodyBytes"]
        assert json.loads(got["body"]) == want["body"]
        assert (got["fingerprint"], got["checkpoint_id"]) == (
            want["fingerprint"],
            want["checkpointId"],
        )
        if "consistencyProofFromPreviousVersion" in want:
            assert (
                json.loads(got["consistency_proof"]) == want["consistencyProofFromPreviousVersion"]
            )


def test_running_again_makes_no_new_version(example: Ledger) -> None:
    for run in EXAMPLE["runs"]:
        for file in run["files"]:
            example.land(file["name"], landing_csv(file["rows"]))
        example.run(as_of=date.fromisoformat(run["asOf"]))
    before = checkpoint_rows(example)
    again = example.run(as_of=date(2026, 5, 3))
    assert again.checkpoints.new_versions == 0 and again.checkpoints.customers == 0
    assert checkpoint_rows(example) == before
