"""Checkpoints end to end (SPEC section 4): exact fingerprints of every version against a model
written in the test from the SPEC's formulas, idempotence, rebuilds, tampering, key rotation."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import jwt
import polars as pl
import pytest
import rfc8785
from typer.testing import CliRunner

from flows.checkpoints import due_customers, passes, stale_customers
from flows.cli import app
from flows.config import Settings
from flows.fingerprints import tree_leaves
from flows.signing import SigningPool, active_signing_key, jwks
from flows.warehouse import connect
from tests.conftest import Ledger, csv_row
from tests.transforms.test_merkle import mth

SALT_KEY = b"test-salt-key"

# Three runs over three months for three customers; late data in runs 2 and 3.
RUNS = [
    (
        date(2026, 4, 2),
        {
            "2026-04-01.csv": [
                csv_row("a1", customer="alice", amount="100", occurred_at="2026-01-05T10:00:00Z"),
                csv_row(
                    "a2", customer="alice", amount="-30.5", occurred_at="2026-02-01T00:30:00+01:00"
                ),
                csv_row(
                    "a3",
                    customer="alice",
                    amount="-1.000001",
                    status="pending",
                    occurred_at="2026-02-10T00:00:00Z",
                ),
                csv_row(
                    "b1",
                    customer="bob",
                    amount="50",
                    occurred_at="2026-03-31T23:59:59Z",
                    metadata='{"plan":"pro","\U0001f600":"x","\ufb01":"y"}',
                ),
                csv_row(
                    "c1",
                    customer="carol",
                    amount="-5",
                    status="failed",
                    occurred_at="2026-01-20T00:00:00Z",
                ),
                csv_row(
                    "c2",
                    customer="carol",
                    amount="7",
                    reason='say "hi"',
                    reference="r-1",
                    occurred_at="2026-03-02T00:00:00Z",
                ),
            ],
        },
    ),
    (
        date(2026, 4, 3),
        {
            "2026-04-02.csv": [
                csv_row(
                    "a3",
                    customer="alice",
                    amount="-1.000001",
                    status="verified",
                    occurred_at="2026-02-10T00:00:00Z",
                ),
                csv_row("a4", customer="alice", amount="20", occurred_at="2026-01-31T23:00:00Z"),
                csv_row(
                    "b2", customer="bob", amount="-0.000001", occurred_at="2026-03-15T00:00:00Z"
                ),
            ],
        },
    ),
    (
        date(2026, 5, 1),
        {
            "2026-04-20.csv": [
                csv_row("c3", customer="carol", amount="1", occurred_at="2026-04-30T12:00:00Z"),
                csv_row("a5", customer="alice", amount="3", occurred_at="2026-03-03T00:00:00Z"),
            ],
        },
    ),
]


def model_versions(runs: list) -> list[tuple[str, str, int, str]]:
    """Every (customer, period, version, fingerprint) the SPEC implies, computed here alone."""
    import csv
    import io

    deltas: dict[str, dict] = {}
    verified_order: list[str] = []
    versions: dict[tuple[str, str], list[dict]] = {}
    made: list[tuple[str, str, int, str]] = []
    for as_of, files in runs:
        for name in sorted(files):
            text = (
                "tenant_id,environment,delta_id,customer_id,amount,reason,reference_id,"
                "status,occurred_at,metadata\n" + "\n".join(files[name])
            )
            for row in csv.DictReader(io.StringIO(text)):
                occurred = datetime.fromisoformat(row["occurred_at"]).astimezone(UTC)
                known = deltas.get(row["delta_id"])
                if known is None:
                    deltas[row["delta_id"]] = known = {**row, "occurred": occurred}
                    known["status"] = "pending"
                if known["status"] == "pending" and row["status"] != "pending":
                    known["status"] = row["status"]
                    if row["status"] == "verified":
                        verified_order.append(row["delta_id"])
        last_closed = (
            f"{as_of.year if as_of.month > 1 else as_of.year - 1:04d}-"
            f"{as_of.month - 1 if as_of.month > 1 else 12:02d}"
        )
        for customer in sorted({d["customer_id"] for d in deltas.values()}):
            periods = sorted(
                {
                    d["occurred"].strftime("%Y-%m")
                    for d in deltas.values()
                    if d["customer_id"] == customer
                }
            )
            opening, previous = Decimal(0), None
            for period in [p for p in periods if p <= last_closed]:
                tree = [
                    deltas[i]
                    for i in verified_order
                    if deltas[i]["customer_id"] == customer
                    and deltas[i]["occurred"].strftime("%Y-%m") == period
                ]
                leaves = []
                for index, d in enumerate(tree):
                    leaf = {
                        "spec": "tallyproof/leaf/v1",
                        "tenantId": "acme",
                        "environment": "production",
                        "customerId": customer,
                        "period": period,
                        "index": index,
                        "deltaId": d["delta_id"],
                        "amount": format(Decimal(d["amount"]).normalize(), "f"),
                        "reason": d["reason"],
                        "occurredAt": d["occurred"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "salt": hmac.new(
                            SALT_KEY, f"acme\nproduction\n{d['delta_id']}".encode(), hashlib.sha256
                        ).hexdigest(),
                    }
                    if d["reference_id"]:
                        leaf["referenceId"] = d["reference_id"]
                    if d["metadata"]:
                        leaf["metadata"] = json.loads(d["metadata"])
                    leaves.append(rfc8785.dumps(leaf))
                amounts = [Decimal(d["amount"]) for d in tree]
                credits = sum((a for a in amounts if a > 0), Decimal(0))
                debits = sum((a for a in amounts if a < 0), Decimal(0))
                text = lambda v: format(v.normalize(), "f") if v else "0"  # noqa: E731
                body = {
                    "spec": "tallyproof/checkpoint/v1",
                    "tenantId": "acme",
                    "environment": "production",
                    "customerId": customer,
                    "period": period,
                    "treeSize": len(leaves),
                    "root": mth(leaves).hex(),
                    "openingBalance": text(opening),
                    "credits": text(credits),
                    "debits": text(debits),
                    "closingBalance": text(opening + credits + debits),
                }
                if previous:
                    body["previous"] = previous
                history = versions.setdefault((customer, period), [])
                core = lambda b: {k: v for k, v in b.items() if k not in ("version", "supersedes")}  # noqa: E731
                if history and core(history[-1]["body"]) == body:
                    fingerprint = history[-1]["fingerprint"]
                else:
                    body["version"] = len(history) + 1
                    if history:
                        body["supersedes"] = history[-1]["fingerprint"]
                    fingerprint = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
                    history.append({"body": body, "fingerprint": fingerprint})
                    made.append((customer, period, body["version"], fingerprint))
                opening += credits + debits
                previous = fingerprint
    return sorted(made)


def stored_versions(ledger: Ledger) -> list[tuple[str, str, int, str]]:
    return sorted(ledger.rows("SELECT customer_id, period, version, fingerprint FROM checkpoints"))


def play(ledger: Ledger, runs: list) -> None:
    for as_of, files in runs:
        for name, rows in files.items():
            ledger.land_csv(name, *rows)
        ledger.run(as_of=as_of)


def test_every_version_matches_the_spec_model(ledger: Ledger) -> None:
    play(ledger, RUNS)
    expected = model_versions(RUNS)
    assert stored_versions(ledger) == expected
    # late data made second versions, and the chain re-linked the later periods
    assert ("alice", "2026-01", 2) in {(c, p, v) for c, p, v, _ in expected}
    assert ("alice", "2026-03", 1) in {(c, p, v) for c, p, v, _ in expected}
    assert ("carol", "2026-04", 1) in {(c, p, v) for c, p, v, _ in expected}


@pytest.mark.parametrize("limit", ["CUSTOMERS_PER_PASS", "LEAVES_PER_PASS"])
def test_small_passes_make_the_same_versions(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    monkeypatch.setattr(f"flows.checkpoints.{limit}", 1)
    play(ledger, RUNS)
    assert stored_versions(ledger) == model_versions(RUNS)


def test_passes_signed_by_worker_processes_verify(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pool of spawned signers serves every pass of a stage."""
    monkeypatch.setattr("flows.signing.PARALLEL_FROM", 1)
    monkeypatch.setattr("flows.checkpoints.CUSTOMERS_PER_PASS", 1)
    play(ledger, RUNS)
    assert stored_versions(ledger) == model_versions(RUNS)
    keys = {k["kid"]: jwt.PyJWK(k, algorithm="EdDSA").key for k in jwks(ledger.settings)["keys"]}
    rows = ledger.rows("SELECT signature, fingerprint, checkpoint_id, kid FROM checkpoints")
    assert rows
    for signature, fingerprint, cid, kid in rows:
        claims = jwt.decode(signature, keys[kid], algorithms=["EdDSA"])
        assert (claims["sub"], claims["fingerprint"]) == (cid, fingerprint)


@pytest.mark.parametrize("parallel_from", [10_000, 1])
def test_checkpoint_signatures_are_pyjwt_tokens(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, parallel_from: int
) -> None:
    """Checkpoints are signed without PyJWT's encoder, for speed: the tokens must be the very
    bytes `jwt.encode` makes (SPEC section 4), inline and from the worker processes."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1790000000")
    monkeypatch.setattr("flows.signing.PARALLEL_FROM", parallel_from)
    key = active_signing_key(settings)
    ids = [f"chk_{i:024x}" for i in range(5)]
    fingerprints = [hashlib.sha256(i.encode()).hexdigest() for i in ids]
    with SigningPool() as signer:
        tokens = signer.sign(key, ids, fingerprints)
        assert signer.sign(key, [], []) == []  # with the workers running, too
    public = key.private_key.public_key()
    for token, cid, fingerprint in zip(tokens, ids, fingerprints, strict=True):
        claims = {"sub": cid, "fingerprint": fingerprint, "iat": 1790000000}
        headers = {"kid": key.kid}
        assert token == jwt.encode(claims, key.private_key, algorithm="EdDSA", headers=headers)
        assert jwt.decode(token, public, algorithms=["EdDSA"]) == claims
        assert jwt.get_unverified_header(token) == {**headers, "alg": "EdDSA", "typ": "JWT"}


def test_a_pass_counts_the_leaves_of_grown_trees_only(ledger: Ledger) -> None:
    """Passes are cut by what they hash: a day's customers hold far more history than grew."""
    play(ledger, RUNS[:2])
    as_of, files = RUNS[2]
    for name, rows in files.items():
        ledger.land_csv(name, *rows)
    ledger.ingest()
    con = connect(ledger.settings.warehouse)
    try:
        stale = stale_customers(con, "2026-04", due_customers(con, "2026-04"))
    finally:
        con.close()
    # alice: March is new (a5) and holds one leaf; January and February (two each) did not
    # grow. carol: April is new (c3); March (c2) did not grow. bob did not move.
    assert stale.select("customer_id", "leaves").rows() == [("alice", 1), ("carol", 1)]


def test_tree_leaves_come_in_tree_and_index_order(ledger: Ledger) -> None:
    """The query is unordered and the trees are numbered for the sort: rows must still come
    in (tenant, environment, customer, period, leaf index) order, whatever the trees asked
    for and however large the indices."""
    play(ledger, RUNS)
    con = connect(ledger.settings.warehouse)
    try:
        trees = con.sql(
            "SELECT DISTINCT tenant_id, environment, customer_id, period FROM deltas "
            "WHERE status = 'verified' ORDER BY customer_id DESC, period DESC"
        ).pl()
        order = ["tenant_id", "environment", "customer_id", "period", "leaf_index"]
        leaves = tree_leaves(con, pl.concat([trees, trees]))  # asked twice, returned once
        (verified,) = con.execute(
            "SELECT count(*) FROM deltas WHERE status = 'verified'"
        ).fetchone()
        assert leaves.height == verified
        assert leaves.select(order).rows() == sorted(leaves.select(order).rows())
        # Past 2^32 the one-number key would overflow into the next tree's: two columns then.
        con.execute(
            "UPDATE deltas SET leaf_index = leaf_index + 4294967296 WHERE customer_id = 'alice'"
        )
        big = tree_leaves(con, trees)
        assert big["leaf_index"].max() >= 1 << 32
        assert big.select(order).rows() == sorted(big.select(order).rows())
    finally:
        con.close()


def test_passes_are_cut_by_customers_and_by_leaves() -> None:
    customers = pl.DataFrame(
        {
            "tenant_id": ["t"] * 6,
            "environment": ["production"] * 6,
            "customer_id": ["a", "b", "c", "d", "e", "f"],
            "leaves": [3, 3, 9, 1, 1, 1],
        }
    )
    cut = [p["customer_id"].to_list() for p in passes(customers, 2, 5)]
    # A pass ends where either count crosses its limit: after b (6 leaves), after c (its 9
    # leaves alone), after d (the second of its pair of rows), and e and f close the rest.
    assert cut == [["a", "b"], ["c"], ["d"], ["e", "f"]]
    by_count = [p["customer_id"].to_list() for p in passes(customers.drop("leaves"), 4, 5)]
    assert by_count == [["a", "b", "c", "d"], ["e", "f"]]


def test_chains_link_and_balance(ledger: Ledger) -> None:
    play(ledger, RUNS)
    latest = ledger.rows(
        "SELECT customer_id, period, fingerprint, previous, opening_balance, "
        "closing_balance FROM latest_checkpoints ORDER BY 1, 2"
    )
    by_customer: dict[str, list] = {}
    for row in latest:
        by_customer.setdefault(row[0], []).append(row)
    for rows in by_customer.values():
        assert rows[0][3] is None and rows[0][4] == 0
        for before, after in zip(rows, rows[1:], strict=False):
            assert after[3] == before[2]  # previous names the checkpoint before
            assert after[4] == before[5]  # opening equals its closing


def test_second_run_and_rebuild_give_the_same_fingerprints(ledger: Ledger, settings) -> None:
    runs = [(RUNS[2][0], {k: v for _, files in RUNS for k, v in files.items()})]
    play(ledger, runs)
    first = stored_versions(ledger)
    again = ledger.run(as_of=RUNS[2][0])
    assert again.checkpoints.new_versions == 0
    assert stored_versions(ledger) == first
    # A fresh warehouse from the same inbox and key: the same fingerprints.
    shutil.move(ledger.settings.warehouse, str(ledger.settings.warehouse) + ".old")
    ledger.run(as_of=RUNS[2][0])
    assert stored_versions(ledger) == first
    assert first == model_versions(runs)


def test_consistency_proofs_are_stored_and_verify(ledger: Ledger) -> None:
    from transforms import merkle

    play(ledger, RUNS)
    rows = ledger.rows(
        "SELECT v1.tree_size, v1.root, v2.tree_size, v2.root, "
        "v2.consistency_proof FROM checkpoints v1 JOIN checkpoints v2 "
        "USING (tenant_id, environment, customer_id, period) "
        "WHERE v2.version = v1.version + 1"
    )
    assert rows
    for old_size, old_root, new_size, new_root, proof in rows:
        hashes = [bytes.fromhex(h) for h in json.loads(proof)]
        if old_size == new_size or old_size == 0:
            assert hashes == []
            assert old_root == new_root or old_size == 0
        else:
            merkle.verify_consistency(
                old_size, new_size, bytes.fromhex(old_root), bytes.fromhex(new_root), hashes
            )


def test_future_periods_are_not_checkpointed_and_open_ones_only_on_request(ledger: Ledger) -> None:
    ledger.land_csv(
        "x.csv",
        csv_row("d1", occurred_at="2026-03-10T00:00:00Z"),
        csv_row("d2", occurred_at="2026-04-10T00:00:00Z"),
        csv_row("d3", occurred_at="2026-06-10T00:00:00Z"),
    )
    ledger.run(as_of=date(2026, 4, 15))
    assert ledger.rows("SELECT period FROM checkpoints") == [("2026-03",)]
    ledger.run(as_of=date(2026, 4, 15), include_open_period=True)
    assert ledger.rows("SELECT period FROM checkpoints ORDER BY 1") == [("2026-03",), ("2026-04",)]


def test_a_run_dated_after_today_is_refused(ledger: Ledger) -> None:
    from datetime import UTC, datetime, timedelta

    from flows.errors import InvalidRequestError

    ledger.land_csv("x.csv", csv_row("d1", occurred_at="2026-03-10T00:00:00Z"))
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    with pytest.raises(InvalidRequestError, match="is after today") as refused:
        ledger.run(as_of=tomorrow)
    assert refused.value.parameter == "as-of"
    assert not ledger.settings.warehouse.exists()


def test_an_open_period_checkpointed_on_request_follows_a_change_before_it(
    ledger: Ledger,
) -> None:
    """SPEC section 4: each `previous` names the latest version of the period before, and
    `openingBalance` is its `closingBalance`. An open period checkpointed on request gets a
    new version when late data changes the period before it, also in a run that does not ask
    for the open period (it used to keep naming the superseded version)."""
    ledger.land_csv(
        "a.csv",
        csv_row("d1", amount="10", occurred_at="2026-04-10T00:00:00Z"),
        csv_row("d2", amount="5", occurred_at="2026-05-10T00:00:00Z"),
    )
    ledger.run(as_of=date(2026, 5, 15), include_open_period=True)
    ledger.land_csv("b.csv", csv_row("d3", amount="1", occurred_at="2026-04-20T00:00:00Z"))
    ledger.run(as_of=date(2026, 5, 16))
    latest = {
        period: (fingerprint, json.loads(body))
        for period, fingerprint, body in ledger.rows(
            "SELECT period, fingerprint, body FROM checkpoints "
            "QUALIFY version = max(version) OVER (PARTITION BY period)"
        )
    }
    april, may = latest["2026-04"], latest["2026-05"]
    assert (april[1]["version"], april[1]["closingBalance"]) == (2, "11")
    assert may[1]["version"] == 2
    assert may[1]["previous"] == april[0]
    assert (may[1]["openingBalance"], may[1]["closingBalance"]) == ("11", "16")
    ledger.run(as_of=date(2026, 5, 16))  # and nothing more
    assert ledger.rows("SELECT count(*) FROM checkpoints") == [(4,)]


def test_a_run_with_an_earlier_date_leaves_later_months_and_their_chain_alone(
    ledger: Ledger,
) -> None:
    """A month after the run's open month was checkpointed by a run with a later date: it is in
    this run's future. Re-versioning it across the open month, which late data had filled but
    which is not checkpointed, named the month before as `previous` with an opening balance
    that counted the open month (a chain `verify` failed)."""
    ledger.land_csv(
        "a.csv",
        csv_row("d1", amount="10", occurred_at="2026-08-10T00:00:00Z"),
        csv_row("d2", amount="5", occurred_at="2026-09-10T00:00:00Z"),
        csv_row("d3", amount="1", occurred_at="2026-11-10T00:00:00Z"),
    )
    ledger.run(as_of=date(2026, 12, 2))
    ledger.land_csv("b.csv", csv_row("d4", amount="100", occurred_at="2026-10-10T00:00:00Z"))
    report = ledger.run(as_of=date(2026, 10, 15))
    assert report.checkpoints.new_versions == 0
    ledger.run(as_of=date(2026, 12, 2))
    versions = {
        (period, version): (fingerprint, json.loads(body))
        for period, version, fingerprint, body in ledger.rows(
            "SELECT period, version, fingerprint, body FROM checkpoints"
        )
    }
    assert sorted(versions) == [
        ("2026-08", 1),
        ("2026-09", 1),
        ("2026-10", 1),
        ("2026-11", 1),
        ("2026-11", 2),
    ]
    by_fingerprint = {f: body for f, body in versions.values()}
    for fingerprint, body in versions.values():  # every version's chain holds
        if "previous" in body:
            before = by_fingerprint[body["previous"]]
            assert body["openingBalance"] == before["closingBalance"], fingerprint
    assert versions[("2026-11", 2)][1]["previous"] == versions[("2026-10", 1)][0]


def test_months_a_later_run_checkpointed_follow_a_change_while_the_open_month_has_one(
    ledger: Ledger,
) -> None:
    """The open month checkpointed on request and the month after it checkpointed by a run with
    a later date: a change before them re-links both, so every `previous` names the latest
    version of the month before."""
    ledger.land_csv(
        "a.csv",
        csv_row("d1", amount="10", occurred_at="2026-08-10T00:00:00Z"),
        csv_row("d2", amount="5", occurred_at="2026-10-05T00:00:00Z"),
    )
    ledger.run(as_of=date(2026, 10, 15), include_open_period=True)  # August and October
    ledger.land_csv("b.csv", csv_row("d3", amount="1", occurred_at="2026-11-10T00:00:00Z"))
    ledger.run(as_of=date(2026, 12, 2))  # November
    ledger.land_csv("c.csv", csv_row("d4", amount="100", occurred_at="2026-08-20T00:00:00Z"))
    report = ledger.run(as_of=date(2026, 10, 20))
    assert report.checkpoints.new_versions == 3
    latest = {
        period: (fingerprint, json.loads(body))
        for period, fingerprint, body in ledger.rows(
            "SELECT period, fingerprint, body FROM checkpoints "
            "QUALIFY version = max(version) OVER (PARTITION BY period)"
        )
    }
    assert latest["2026-10"][1]["previous"] == latest["2026-08"][0]
    assert latest["2026-11"][1]["previous"] == latest["2026-10"][0]
    assert latest["2026-11"][1]["openingBalance"] == latest["2026-10"][1]["closingBalance"]


def test_tampering_is_caught_by_the_tamper_check_and_by_verify(ledger: Ledger, tmp_path) -> None:
    play(ledger, RUNS[:1])
    runner = CliRunner()
    # a2 (2026-02-01T00:30+01:00) is a January delta in UTC
    args = ["--tenant", "acme", "--customer", "alice", "--period", "2026-01"]
    receipt = tmp_path / "receipt.json"
    assert runner.invoke(app, ["receipt", *args, "--out", str(receipt)]).exit_code == 0
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(ledger.settings)))
    ok = runner.invoke(app, ["verify", str(receipt), "--jwks", str(jwks_file)])
    assert ok.exit_code == 0, ok.output
    assert "all checks passed" in ok.output

    con = duckdb.connect(str(ledger.settings.warehouse))
    con.execute("UPDATE deltas SET amount = -3.05 WHERE delta_id = 'a2'").fetchall()
    con.close()

    found = runner.invoke(app, ["fingerprints", "--tenant", "acme", "--customer", "alice"])
    assert found.exit_code == 1
    candidates = json.loads(found.stdout)
    flagged = {(c["period"], c["tamperCheck"]["rootMatches"]) for c in candidates}
    assert flagged == {("2026-01", False), ("2026-02", True)}

    assert runner.invoke(app, ["receipt", *args, "--out", str(receipt)]).exit_code == 0
    bad = runner.invoke(app, ["verify", str(receipt), "--jwks", str(jwks_file)])
    assert bad.exit_code == 1
    assert "FAIL leaves: root" in bad.output and "FAIL leaves: totals" in bad.output


def test_rotated_keys_sign_new_checkpoints_and_old_ones_still_verify(ledger: Ledger) -> None:
    play(ledger, RUNS[:1])
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "rotate"]).exit_code == 0
    play(ledger, RUNS[1:2])
    keys = {k["kid"]: jwt.PyJWK(k, algorithm="EdDSA").key for k in jwks(ledger.settings)["keys"]}
    assert len(keys) == 2
    kids = set()
    for signature, fingerprint, cid, kid in ledger.rows(
        "SELECT signature, fingerprint, checkpoint_id, kid FROM checkpoints"
    ):
        assert jwt.get_unverified_header(signature)["kid"] == kid
        claims = jwt.decode(signature, keys[kid], algorithms=["EdDSA"])
        assert (claims["sub"], claims["fingerprint"]) == (cid, fingerprint)
        kids.add(kid)
    assert kids == set(keys)
    active = jwks(ledger.settings)["keys"][0]["kid"]
    newest = ledger.rows(
        "SELECT kid FROM checkpoints WHERE created_at = (SELECT max(created_at) FROM checkpoints)"
    )
    assert {k for (k,) in newest} == {active}


def test_keys_are_private(ledger: Ledger) -> None:
    key = active_signing_key(ledger.settings)
    path = ledger.settings.keys_dir / "signing" / f"{key.kid}.pem"
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("tamper", ["body", "fingerprint", "signature"])
def test_verify_names_what_failed_in_a_batch_export(ledger: Ledger, tmp_path, tamper) -> None:
    from flows.receipts import checkpoint_document
    from flows.verify import verify_document
    from flows.warehouse import connect

    play(ledger, RUNS[:1])
    con = connect(ledger.settings.warehouse, read_only=True)
    rows = (
        con.sql("SELECT * FROM latest_checkpoints WHERE period = '2026-03' ORDER BY customer_id")
        .pl()
        .to_dicts()
    )
    con.close()
    export = {
        "tenantId": "acme",
        "environment": "production",
        "period": "2026-03",
        "checkpoints": [checkpoint_document(r) for r in rows],
    }
    keys = jwks(ledger.settings)
    assert verify_document(export, keys)[1].ok
    entry = export["checkpoints"][0]
    if tamper == "body":
        entry["body"]["credits"] = "51"
    elif tamper == "fingerprint":
        entry["fingerprint"] = "0" * 64
    else:
        entry["signature"] = entry["signature"][:-4] + (
            "AAAA" if entry["signature"][-4:] != "AAAA" else "BBBB"
        )
    failed = [c.name.split(": ")[1] for c in verify_document(export, keys)[1] if not c.ok]
    assert (
        failed
        == {
            "body": ["body", "fingerprint", "checkpointId", "signature"],
            "fingerprint": ["fingerprint"],
            "signature": ["signature"],
        }[tamper]
    )


def test_grown_trees_hash_only_their_new_leaves_and_match_a_whole_rebuild(
    ledger: Ledger,
) -> None:
    """A tree that grew from a version with a kept compact range hashes its new leaves alone;
    its root, consistency proof and compact range are those of the whole tree. A version
    without one (a warehouse from before compact ranges were kept) is rebuilt whole, and its
    next version extends again."""
    from flows.fingerprints import Customer, customer_leaf_hashes
    from transforms import merkle

    dan = Customer("acme", "production", "dan")
    sizes = [5, 12, 13, 16, 16 + 17]  # across powers of two, and a jump by more than doubling
    landed = 0
    for run, size in enumerate(sizes):
        ledger.land_csv(
            f"2026-04-{run + 1:02d}.csv",
            *(
                csv_row(f"d{n}", customer="dan", occurred_at=f"2026-03-{n % 28 + 1:02d}T00:00:00Z")
                for n in range(landed, size)
            ),
        )
        if run == 3:  # as if versions so far had been made before compact ranges were kept
            con = connect(ledger.settings.warehouse)
            con.execute("DELETE FROM compact_ranges").fetchall()
            con.close()
        report = ledger.run(as_of=date(2026, 4, 2))
        hashed = report.checkpoints.leaves_hashed
        assert hashed == (size if run in (0, 3) else size - landed), (run, hashed)
        landed = size

    con = connect(ledger.settings.warehouse, read_only=True)
    try:
        hashes = customer_leaf_hashes(con, dan)["2026-03"]
        versions = con.execute(
            "SELECT c.version, c.tree_size, c.root, c.consistency_proof, r.compact_range "
            "FROM checkpoints c LEFT JOIN compact_ranges r USING (fingerprint) "
            "WHERE c.customer_id = 'dan' ORDER BY c.version"
        ).fetchall()
    finally:
        con.close()
    assert [v[1] for v in versions] == sizes
    old_size = 0
    for version, size, root, proof, compact_range in versions:
        tree = hashes[:size]
        assert root == merkle.root_from_hashes(tree).hex(), version
        if old_size:  # the stored text, byte for byte, whichever way it was made
            expected = merkle.consistency_proof(old_size, tree)
            assert proof == json.dumps([h.hex() for h in expected]), version
        spans = merkle.compact_range_spans(size)
        kept = b"".join(merkle.root_from_hashes(tree[a:b]) for a, b in spans)
        assert compact_range == (None if version <= 3 else kept), version
        old_size = size
