"""The ledger rules of SPEC section 2: first event fixes facts, status only moves forward once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest

from transforms.ledger import FACT_COLUMNS, KEY, ledger_changes, with_leaf_indices

WHEN = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


def event(
    seq: int,
    delta: str,
    status: str,
    *,
    amount: str = "5",
    customer: str = "c1",
    when: datetime = WHEN,
    line: int | None = None,
) -> dict[str, object]:
    return {
        "tenant_id": "acme",
        "environment": "production",
        "delta_id": delta,
        "customer_id": customer,
        "amount": Decimal(amount),
        "reason": "usage",
        "reference_id": None,
        "metadata": None,
        "occurred_at_utc": when,
        "period": when.strftime("%Y-%m"),
        "status": status,
        "event_seq": seq,
        "_file": "f.csv",
        "_line": line or seq + 1,
    }


SCHEMA = {
    "tenant_id": pl.String,
    "environment": pl.String,
    "delta_id": pl.String,
    "customer_id": pl.String,
    "amount": pl.Decimal(18, 6),
    "reason": pl.String,
    "reference_id": pl.String,
    "metadata": pl.String,
    "occurred_at_utc": pl.Datetime("us", "UTC"),
    "period": pl.String,
    "status": pl.String,
    "event_seq": pl.Int64,
    "_file": pl.String,
    "_line": pl.Int64,
}


def frame(rows: list[dict[str, object]]) -> pl.LazyFrame:
    return pl.DataFrame(rows, schema=SCHEMA).lazy()


def known(rows: list[dict[str, object]]) -> pl.LazyFrame:
    return frame(rows).select(*KEY, *FACT_COLUMNS, "status", first_event_seq=pl.col("event_seq"))


def apply(incoming: list[dict[str, object]], state: list[dict[str, object]] | None = None):
    changes = ledger_changes(frame(incoming), known(state or []))
    return [
        f.collect() for f in (changes.events, changes.rejects, changes.created, changes.advanced)
    ]


def outcomes(events: pl.DataFrame) -> list[tuple[int, str]]:
    return sorted(events.select("event_seq", "outcome").rows())


def test_a_new_delta_is_created_with_its_final_status_of_the_batch() -> None:
    events, rejects, created, advanced = apply(
        [event(1, "d1", "pending"), event(2, "d1", "pending"), event(3, "d1", "verified")]
    )
    assert outcomes(events) == [(1, "created"), (2, "duplicate"), (3, "advanced")]
    assert rejects.is_empty() and advanced.is_empty()
    assert created.select("status", "first_event_seq", "status_event_seq").row(0) == (
        "verified",
        1,
        3,
    )


def test_the_same_event_twice_is_a_duplicate() -> None:
    events, rejects, created, _ = apply([event(1, "d1", "verified"), event(2, "d1", "verified")])
    assert outcomes(events) == [(1, "created"), (2, "duplicate")]
    assert rejects.is_empty() and created.height == 1


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("verified", "pending"),
        ("verified", "failed"),
        ("failed", "verified"),
        ("failed", "pending"),
    ],
)
def test_status_regressions_are_refused(first: str, then: str) -> None:
    events, rejects, created, _ = apply([event(1, "d1", first), event(2, "d1", then)])
    assert outcomes(events) == [(1, "created")]
    assert rejects.select("_code", "_field", "event_seq").rows() == [
        ("STATUS_REGRESSION", "status", 2)
    ]
    assert f"has status {first}; a move of its status to {then}" in rejects["_message"][0]
    assert created["status"].to_list() == [first]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "6"}, "amount"),
        ({"customer": "c2"}, "customer_id"),
        ({"when": datetime(2026, 3, 6, tzinfo=UTC)}, "occurred_at"),
    ],
)
def test_different_facts_are_a_conflict_and_change_nothing(change: dict, field: str) -> None:
    events, rejects, created, _ = apply(
        [event(1, "d1", "pending"), event(2, "d1", "verified", **change)]
    )
    assert outcomes(events) == [(1, "created")]
    assert rejects.select("_code", "_field").rows() == [("DELTA_CONFLICT", field)]
    assert created["status"].to_list() == ["pending"]


def test_a_conflict_does_not_block_a_later_good_advance() -> None:
    events, rejects, created, _ = apply(
        [
            event(1, "d1", "pending"),
            event(2, "d1", "verified", amount="9"),
            event(3, "d1", "failed"),
        ]
    )
    assert outcomes(events) == [(1, "created"), (3, "advanced")]
    assert rejects["event_seq"].to_list() == [2]
    assert created.select("status", "status_event_seq").row(0) == ("failed", 3)


def test_known_deltas_move_forward_and_conflict_against_their_first_facts() -> None:
    state = [event(1, "d1", "pending"), event(2, "d2", "verified")]
    events, rejects, created, advanced = apply(
        [
            event(10, "d1", "verified"),
            event(11, "d2", "verified"),
            event(12, "d2", "pending"),
            event(13, "d1", "verified", amount="7"),
        ],
        state,
    )
    assert outcomes(events) == [(10, "advanced"), (11, "duplicate")]
    assert sorted(rejects.select("event_seq", "_code").rows()) == [
        (12, "STATUS_REGRESSION"),
        (13, "DELTA_CONFLICT"),
    ]
    assert created.is_empty()
    assert advanced.select("delta_id", "status", "status_event_seq", "customer_id").rows() == [
        ("d1", "verified", 10, "c1")
    ]


def test_leaf_indices_follow_the_verifying_event_and_append_to_known_trees() -> None:
    incoming = [
        event(10, "a", "pending"),
        event(11, "b", "verified"),
        event(12, "c", "failed"),
        event(13, "a", "verified"),
        event(14, "k", "verified"),
    ]
    state = [event(1, "k", "pending")]
    _, _, created, advanced = apply(incoming, state)
    sizes = pl.DataFrame(
        {
            "tenant_id": ["acme"],
            "environment": ["production"],
            "customer_id": ["c1"],
            "period": ["2026-03"],
            "tree_size": [4],
        }
    )
    created, advanced = with_leaf_indices(created, advanced, sizes)
    assert dict(created.select("delta_id", "leaf_index").rows()) == {"a": 5, "b": 4, "c": None}
    assert advanced.select("delta_id", "leaf_index").rows() == [("k", 6)]
