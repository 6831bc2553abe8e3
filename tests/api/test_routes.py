"""Every route of SPEC section 7 over real HTTP, against a warehouse built by the pipeline."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import httpx
import pytest

from flows.snapshots import current_snapshot
from flows.verify import verify_document
from flows.warehouse import connect
from tests.api.conftest import LiveServer

BASE = "/dashboard/customers"


def data(response: httpx.Response, status: int = 200) -> object:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def failure(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def warehouse(live: LiveServer, query: str, params: object = None) -> list[tuple]:
    con = connect(live.settings.warehouse, read_only=True)
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


# --- operations ---------------------------------------------------------------------------------


def test_health_and_jwks_need_no_token(live: LiveServer) -> None:
    health = httpx.get(f"{live.url}/healthz").json()["data"]
    # the snapshot the next request reads, even before any request has opened it
    assert health == {"status": "ok", "snapshot": current_snapshot(live.settings).name}
    keys = httpx.get(f"{live.url}/.well-known/jwks.json").json()["keys"]
    assert keys and keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519"


def test_openapi_describes_every_parameter(live: LiveServer) -> None:
    spec = httpx.get(f"{live.url}/openapi.json").json()
    assert len([p for p in spec["paths"] if p.startswith(BASE)]) == 13
    for path, methods in spec["paths"].items():
        for method in methods.values():
            for parameter in method.get("parameters", []):
                assert parameter.get("description"), (path, parameter["name"])


# --- list and summary ---------------------------------------------------------------------------


def test_list_pages_and_searches(acme: httpx.Client) -> None:
    first = acme.get(BASE).json()
    assert (first["page"], first["limit"], first["total"], first["totalPages"]) == (1, 25, 32, 2)
    assert [c["customerId"] for c in first["data"][:2]] == ["alice", "bob"]
    second = acme.get(BASE, params={"page": 2}).json()
    assert len(second["data"]) == 7 and second["data"][-1]["customerId"] == "cust_029"
    alice = first["data"][0]
    # alice: verified 100 - 12.5 + 40 (+ -1 in May); pending and failed do not count
    assert (alice["balance"], alice["credits"], alice["debits"]) == ("126.5", "140", "-13.5")
    assert alice["deltaCounts"] == {"total": 6, "verified": 4, "pending": 1, "failed": 1}
    # May is alice's newest period and still open (see test_detail): March is her last checkpoint
    assert (alice["lastPeriod"], alice["lastCheckpointPeriod"]) == ("2026-05", "2026-03")
    bob = first["data"][1]
    assert (bob["lastPeriod"], bob["lastCheckpointPeriod"]) == ("2026-04", "2026-04")
    found = acme.get(BASE, params={"search": "CUST_02", "limit": 5}).json()
    assert found["total"] == 10 and found["totalPages"] == 2 and len(found["data"]) == 5
    beyond = acme.get(BASE, params={"page": 9}).json()
    assert beyond["data"] == [] and beyond["total"] == 32


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
    ],
)
def test_list_parameters_are_checked(acme: httpx.Client, params: dict, parameter: str) -> None:
    error = failure(acme.get(BASE, params=params), 400, "BAD_REQUEST")
    assert error["details"]["parameter"] == parameter
    assert parameter in error["message"]


def test_summary(acme: httpx.Client, live: LiveServer) -> None:
    summary = data(acme.get(f"{BASE}/summary"))
    [(customers, verified, pending, failed, net)] = warehouse(
        live,
        """
        SELECT count(DISTINCT customer_id), count(*) FILTER (status = 'verified'),
               count(*) FILTER (status = 'pending'), count(*) FILTER (status = 'failed'),
               sum(amount) FILTER (status = 'verified')
        FROM deltas WHERE tenant_id = 'acme' AND environment = 'production'""",
    )
    assert summary["customers"] == customers == 32
    assert summary["deltas"] == {
        "total": verified + pending + failed,
        "verified": verified,
        "pending": pending,
        "failed": failed,
    }
    assert Decimal(summary["balance"]) == net
    checkpoints = summary["checkpoints"]
    # The run was as of 2026-05-02; today May is closed too, and alice's May waits for a run.
    assert (checkpoints["closedCustomerPeriods"], checkpoints["checkpointed"]) == (35, 34)
    assert checkpoints["coverage"] == round(34 / 35, 6) and checkpoints["behind"] == 0


# --- detail, filters, export -------------------------------------------------------------------


def deltas(client: httpx.Client, customer: str = "alice", **params: object) -> list[str]:
    body = data(client.get(f"{BASE}/{customer}", params=params))
    return [d["deltaId"] for d in body["deltas"]["items"]]


def test_detail(acme: httpx.Client) -> None:
    body = data(acme.get(f"{BASE}/alice"))
    assert body["customerId"] == "alice" and body["environment"] == "production"
    assert [p["period"] for p in body["periods"]] == ["2026-05", "2026-03", "2026-02"]
    march = body["periods"][1]
    assert (
        march["openingBalance"],
        march["credits"],
        march["debits"],
        march["closingBalance"],
    ) == ("100", "40", "-12.5", "127.5")
    assert march["checkpoint"]["upToDate"] and march["checkpoint"]["treeSize"] == 2
    assert body["periods"][0]["checkpoint"] is None  # May is still open
    assert (body["lastPeriod"], body["lastCheckpointPeriod"]) == ("2026-05", "2026-03")
    bob = data(acme.get(f"{BASE}/bob"))
    assert (bob["lastPeriod"], bob["lastCheckpointPeriod"]) == ("2026-04", "2026-04")
    page = body["deltas"]
    assert (page["page"], page["limit"], page["total"], page["totalPages"]) == (1, 20, 6, 1)
    first = page["items"][0]
    assert first == {
        "deltaId": "a6",
        "occurredAt": "2026-05-01T00:00:00.000000Z",
        "period": "2026-05",
        "amount": "-1",
        "status": "verified",
        "reason": "usage",
        "referenceId": None,
        "metadata": None,
        "leafIndex": 0,
    }


def test_detail_filters_and_sorts(acme: httpx.Client) -> None:
    assert deltas(acme, status="verified", sortOrder="asc") == ["a1", "a2", "a5", "a6"]
    assert deltas(acme, reason="usage") == ["a6", "a3", "a2"]
    assert deltas(acme, startDate="2026-03-01", endDate="2026-03-05") == ["a3", "a2"]
    assert deltas(acme, startDate="2026-03-05T00:00:00Z", endDate="2026-03-06T00:00:00Z") == [
        "a4",
        "a3",
    ]
    assert deltas(acme, search="INV-") == ["a2"]
    assert deltas(acme, sortBy="amount", sortOrder="asc") == ["a2", "a4", "a6", "a3", "a5", "a1"]
    assert deltas(acme, sortBy="amount") == ["a1", "a5", "a3", "a6", "a4", "a2"]
    assert deltas(acme, sortBy="status", sortOrder="asc")[0] == "a4"
    assert deltas(acme, sortBy="reason", sortOrder="asc")[0] == "a5"
    assert deltas(acme, deltaLimit=2, deltaPage=2) == ["a4", "a3"]
    # The count is that of every delta passing the filters, on any page, past the last one too
    verified = {"status": "verified", "deltaLimit": 3}
    page = data(acme.get(f"{BASE}/alice", params=verified))["deltas"]
    assert (page["total"], page["totalPages"], len(page["items"])) == (4, 2, 3)
    page = data(acme.get(f"{BASE}/alice", params={**verified, "deltaPage": 2}))["deltas"]
    assert (page["total"], len(page["items"])) == (4, 1)
    page = data(acme.get(f"{BASE}/alice", params={**verified, "deltaPage": 9}))["deltas"]
    assert (page["total"], page["items"]) == (4, [])
    page = data(acme.get(f"{BASE}/alice", params={"reason": "nothing"}))["deltas"]
    assert (page["total"], page["items"]) == (0, [])
    assert data(acme.get(f"{BASE}/bob"))["deltas"]["items"][-1]["metadata"] == {"plan": "pro"}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"deltaLimit": 101}, "deltaLimit"),
        ({"deltaPage": 0}, "deltaPage"),
        ({"status": "done"}, "status"),
        ({"sortBy": "customer"}, "sortBy"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"startDate": "yesterday"}, "startDate"),
        ({"endDate": "2026-13-01"}, "endDate"),
        ({"startDate": "2026-03-01T00:00:00"}, "startDate"),
        ({"startDate": "2026-04-01", "endDate": "2026-03-01"}, "startDate"),
        # ISO 8601 forms that are not RFC 3339, and instants beyond year 9999 in UTC
        ({"startDate": "2026-W10-1"}, "startDate"),
        ({"startDate": "20260301"}, "startDate"),
        ({"startDate": "2026-03-01T00:00:00.1234567Z"}, "startDate"),
        ({"startDate": "9999-12-31T23:00:00-05:00"}, "startDate"),
        ({"endDate": "0001-01-01T00:00:00+01:00"}, "endDate"),
        ({"endDate": "2026-02-30"}, "endDate"),
    ],
)
def test_detail_parameters_are_checked(acme: httpx.Client, params: dict, parameter: str) -> None:
    error = failure(acme.get(f"{BASE}/alice", params=params), 400, "BAD_REQUEST")
    assert error["details"]["parameter"] == parameter
    if not parameter.startswith("delta"):  # the export takes the filters, not the paging
        export = failure(acme.get(f"{BASE}/alice/export", params=params), 400, "BAD_REQUEST")
        assert export["details"]["parameter"] == parameter


def test_the_last_day_of_year_9999_bounds_nothing(acme: httpx.Client) -> None:
    """The end of 9999-12-31 is past every stored instant; it used to overflow into a 500."""
    everything = data(acme.get(f"{BASE}/alice"))["deltas"]["total"]
    for end in ("9999-12-31", "9999-12-31T23:59:59.999999Z"):
        bounded = data(acme.get(f"{BASE}/alice", params={"endDate": end}))["deltas"]
        assert bounded["total"] == everything


def test_export_streams_the_same_rows_as_csv(acme: httpx.Client) -> None:
    response = acme.get(f"{BASE}/alice/export", params={"status": "verified", "sortBy": "amount"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert [r["delta_id"] for r in rows] == deltas(acme, status="verified", sortBy="amount")
    assert rows[0]["amount"] == "100" and rows[0]["occurred_at"] == "2026-02-03T10:00:00.000000Z"
    assert failure(acme.get(f"{BASE}/nobody/export"), 404, "NOT_FOUND")


# --- receipts, checkpoints, packages -------------------------------------------------------------


def test_receipt_and_its_deprecated_alias(acme: httpx.Client, live: LiveServer) -> None:
    response = acme.get(f"{BASE}/alice/receipt", params={"period": "2026-03"})
    receipt = data(response)
    assert receipt["totals"]["treeSize"] == 2 and len(receipt["leaves"]) == 2
    keys = httpx.get(f"{live.url}/.well-known/jwks.json").json()
    assert verify_document(receipt, keys)[1].ok
    alias = acme.get(f"{BASE}/alice/invoice-proof", params={"period": "2026-03"})
    assert alias.json() == response.json()
    assert alias.headers["Deprecation"] == "true"
    assert alias.headers["Link"] == f'<{BASE}/alice/receipt>; rel="successor-version"'
    assert "Deprecation" not in response.headers
    assert failure(acme.get(f"{BASE}/alice/receipt"), 400)["details"]["parameter"] == "period"
    assert failure(acme.get(f"{BASE}/alice/receipt", params={"period": "2026-5"}), 400)
    # alice exists: a period without a checkpoint is not a 404 (which says "no such customer")
    for period in ("2026-01", "2999-01"):
        failure(acme.get(f"{BASE}/alice/receipt", params={"period": period}), 422, "UNPROCESSABLE")


def test_deprecated_aliases_mark_their_errors_too(acme: httpx.Client, live: LiveServer) -> None:
    """An alias answers exactly like its route, errors included, plus the two headers."""
    link = f'<{BASE}/alice/receipt>; rel="successor-version"'
    for response, status in [
        (acme.get(f"{BASE}/alice/invoice-proof", params={"period": "bad"}), 400),
        (acme.get(f"{BASE}/alice/invoice-proof", params={"period": "2026-01"}), 422),
        (httpx.get(f"{live.url}{BASE}/alice/invoice-proof", params={"period": "2026-03"}), 401),
    ]:
        assert response.status_code == status
        assert (response.headers["Deprecation"], response.headers["Link"]) == ("true", link)
    missing = acme.get(f"{BASE}/nobody:x/fingerprints")
    assert missing.status_code == 404
    assert missing.headers["Link"] == (
        f'<{BASE}/nobody:x/checkpoint-fingerprints>; rel="successor-version"'
    )
    odd = acme.get(f"{BASE}/caf%C3%A9/fingerprints")  # not a valid id; the header stays ASCII
    assert odd.status_code == 404 and "caf%C3%A9" in odd.headers["Link"]
    assert "Deprecation" not in acme.get(f"{BASE}/alice/receipt", params={"period": "x"}).headers


def test_checkpoints_list_and_fingerprints(acme: httpx.Client, live: LiveServer) -> None:
    listed = acme.get(f"{BASE}/alice/checkpoints").json()
    assert listed["total"] == 2 and {c["period"] for c in listed["data"]} == {"2026-02", "2026-03"}
    assert all(c["isLatest"] for c in listed["data"])
    pages = [
        acme.get(f"{BASE}/alice/checkpoints", params={"limit": 1, "page": page}).json()
        for page in (1, 2, 3)
    ]
    assert [(p["page"], p["totalPages"], len(p["data"])) for p in pages] == [
        (1, 2, 1),
        (2, 2, 1),
        (3, 2, 0),
    ]
    assert [p["data"][0]["checkpointId"] for p in pages[:2]] == [
        c["checkpointId"] for c in listed["data"]
    ]
    march = acme.get(f"{BASE}/alice/checkpoints", params={"period": "2026-03"}).json()["data"]
    [(fingerprint,)] = warehouse(
        live,
        "SELECT fingerprint FROM latest_checkpoints WHERE "
        "customer_id = 'alice' AND period = '2026-03' "
        "AND tenant_id = 'acme' AND environment = 'production'",
    )
    assert march[0]["fingerprint"] == fingerprint
    response = acme.get(f"{BASE}/alice/checkpoint-fingerprints")
    candidates = response.json()["data"]
    assert {c["fingerprint"] for c in candidates} >= {fingerprint}
    assert all(c["tamperCheck"]["ok"] for c in candidates)
    by_prefix = acme.get(
        f"{BASE}/alice/checkpoint-fingerprints", params={"fingerprint": fingerprint[:8]}
    ).json()["data"]
    assert [c["fingerprint"] for c in by_prefix] == [fingerprint]
    for alias in ("checkpoints/fingerprints", "fingerprints"):
        deprecated = acme.get(f"{BASE}/alice/{alias}")
        assert deprecated.json() == response.json()
        assert deprecated.headers["Deprecation"] == "true"
        assert "checkpoint-fingerprints" in deprecated.headers["Link"]
    bad = acme.get(f"{BASE}/alice/checkpoint-fingerprints", params={"fingerprint": "abc"})
    assert failure(bad, 400)["details"]["parameter"] == "fingerprint"


def test_creating_a_checkpoint(acme: httpx.Client, live: LiveServer) -> None:
    existing = acme.post(f"{BASE}/alice/checkpoint", json={"period": "2026-03"})
    body = data(existing)
    assert body["created"] is False and body["body"]["period"] == "2026-03"
    [(fingerprint,)] = warehouse(
        live,
        "SELECT fingerprint FROM latest_checkpoints WHERE "
        "customer_id = 'alice' AND period = '2026-03' "
        "AND tenant_id = 'acme' AND environment = 'production'",
    )
    assert body["fingerprint"] == fingerprint
    # May is the open period on the run's date; today it is in the past: checkpointable.
    made = acme.post(f"{BASE}/alice/checkpoint", json={"period": "2026-05"})
    created = data(made, 201)
    assert created["created"] is True and created["version"] == 1
    assert created["body"]["previous"] == fingerprint and created["body"]["treeSize"] == 1
    again = data(acme.post(f"{BASE}/alice/checkpoint", json={"period": "2026-05"}))
    assert again["created"] is False and again["fingerprint"] == created["fingerprint"]
    assert data(acme.get(f"{BASE}/alice/checkpoints", params={"period": "2026-05"})) != []
    failure(acme.post(f"{BASE}/alice/checkpoint", json={"period": "2999-01"}), 422, "UNPROCESSABLE")
    failure(acme.post(f"{BASE}/alice/checkpoint", json={"period": "2026-01"}), 422)
    assert (
        failure(
            acme.post(f"{BASE}/alice/checkpoint", json={"period": "March"}),
            400,
        )["details"]["parameter"]
        == "period"
    )
    assert (
        failure(acme.post(f"{BASE}/alice/checkpoint", json={}), 400)["details"]["parameter"]
        == "period"
    )
    failure(acme.post(f"{BASE}/nobody/checkpoint", json={"period": "2026-03"}), 404)


def test_verification_package(acme: httpx.Client, live: LiveServer) -> None:
    request = {"period": "2026-03", "sampleSize": 5, "nonce": "audit-1"}
    package = data(acme.post(f"{BASE}/alice/verification-package", json=request), 201)
    keys = httpx.get(f"{live.url}/.well-known/jwks.json").json()
    kind, checks = verify_document(package, keys)
    assert kind == "package" and checks.ok
    assert package["sample"]["nonce"] == "audit-1" and len(package["entries"]) == 2
    stored = (
        live.settings.data_dir
        / "output"
        / "packages"
        / "acme"
        / "production"
        / "alice"
        / f"{package['packageId']}.json"
    )
    assert json.loads(stored.read_text()) == package
    for bad, parameter in [
        ({"sampleSize": 0}, "sampleSize"),
        ({"sampleSize": 1001}, "sampleSize"),
        ({"period": "x"}, "period"),
        ({"nonce": ""}, "nonce"),
    ]:
        error = failure(
            acme.post(f"{BASE}/alice/verification-package", json={**request, **bad}), 400
        )
        assert error["details"]["parameter"] == parameter
    empty = acme.post(
        f"{BASE}/bob/verification-package",
        json={"period": "2026-04", "sampleSize": 1, "nonce": "n"},
    )
    assert data(empty, 201)  # bob's April has one verified delta (b2)
    failure(
        acme.post(
            f"{BASE}/alice/verification-package", json={"period": "2026-01", "sampleSize": 1}
        ),
        422,
    )


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"period": "2026-03", "sampleSize": 5, "Nonce": "audit-1"}, "Nonce"),  # misspelt
        ({"period": "2026-03", "sampleSize": True}, "sampleSize"),
        ({"period": "2026-03", "sampleSize": "5"}, "sampleSize"),
        ({"period": "2026-03", "sampleSize": 5.0}, "sampleSize"),
        ({"period": 202603, "sampleSize": 5}, "period"),
    ],
)
def test_package_requests_are_taken_literally(
    acme: httpx.Client, body: dict, parameter: str
) -> None:
    response = acme.post(f"{BASE}/alice/verification-package", json=body)
    assert failure(response, 400, "BAD_REQUEST")["details"]["parameter"] == parameter


def test_a_body_that_is_not_json_is_named(acme: httpx.Client) -> None:
    response = acme.post(
        f"{BASE}/alice/checkpoint",
        content=b'{"period": "2026-03",}',
        headers={"Content-Type": "application/json"},
    )
    error = failure(response, 400, "BAD_REQUEST")
    assert error["details"]["parameter"] == "body" and "JSON" in error["message"]
    extra = acme.post(f"{BASE}/alice/checkpoint", json={"period": "2026-03", "force": True})
    assert failure(extra, 400)["details"]["parameter"] == "force"


def test_an_empty_tree_cannot_be_sampled(live: LiveServer) -> None:
    with live.client("acme") as client:
        # bob's only April deltas: b2 verified, b3 failed; make a customer-period with none.
        response = client.post(
            f"{BASE}/cust_000/verification-package", json={"period": "2026-03", "sampleSize": 3}
        )
        assert data(response, 201)["sample"]["population"] == 1


def test_batch_export(acme: httpx.Client, live: LiveServer) -> None:
    document = data(acme.get(f"{BASE}/batch-checkpoints/export", params={"period": "2026-03"}))
    assert document["period"] == "2026-03" and len(document["checkpoints"]) == 32
    keys = httpx.get(f"{live.url}/.well-known/jwks.json").json()
    assert verify_document(document, keys)[1].ok
    as_csv = acme.get(
        f"{BASE}/batch-checkpoints/export", params={"period": "2026-03", "format": "csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    assert [r["fingerprint"] for r in rows] == [c["fingerprint"] for c in document["checkpoints"]]
    assert (
        failure(
            acme.get(
                f"{BASE}/batch-checkpoints/export", params={"period": "2026-03", "format": "xml"}
            ),
            400,
        )["details"]["parameter"]
        == "format"
    )
    assert (
        failure(acme.get(f"{BASE}/batch-checkpoints/export"), 400)["details"]["parameter"]
        == "period"
    )
    empty = data(acme.get(f"{BASE}/batch-checkpoints/export", params={"period": "2020-01"}))
    assert empty["checkpoints"] == []


# --- isolation -----------------------------------------------------------------------------------


def test_tenants_are_isolated(live: LiveServer) -> None:
    with live.client("globex") as globex:
        listed = globex.get(BASE).json()
        assert [c["customerId"] for c in listed["data"]] == ["alice", "gina"]
        # globex's alice is not acme's alice
        assert data(globex.get(f"{BASE}/alice"))["balance"] == "5"
        missing = failure(globex.get(f"{BASE}/bob"), 404, "NOT_FOUND")
        nowhere = failure(globex.get(f"{BASE}/no-such-customer"), 404, "NOT_FOUND")
        assert missing.keys() == nowhere.keys()
        assert missing["message"].replace("bob", "X") == nowhere["message"].replace(
            "no-such-customer", "X"
        )
        failure(globex.get(f"{BASE}/bob/receipt", params={"period": "2026-03"}), 404)
        failure(globex.post(f"{BASE}/bob/checkpoint", json={"period": "2026-03"}), 404)


def test_environments_are_isolated(live: LiveServer) -> None:
    with live.client("acme", X_Environment="sandbox") as sandbox:
        listed = sandbox.get(BASE, headers={"X-Environment": "sandbox"}).json()
        assert [c["customerId"] for c in listed["data"]] == ["alice"]
        assert (
            data(sandbox.get(f"{BASE}/alice", headers={"X-Environment": "sandbox"}))["balance"]
            == "999"
        )
        failure(sandbox.get(f"{BASE}/bob", headers={"X-Environment": "sandbox"}), 404)
        error = failure(sandbox.get(BASE, headers={"X-Environment": "staging"}), 400)
        assert error["details"]["parameter"] == "X-Environment"
        both = sandbox.get(
            BASE, headers=[("X-Environment", "sandbox"), ("X-Environment", "production")]
        )
        assert failure(both, 400)["details"]["parameter"] == "X-Environment"
