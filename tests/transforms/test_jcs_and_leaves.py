"""JCS against the rfc8785 package, and vectorised leaf bytes and roots against one-at-a-time
references, on random unicode everywhere a leaf carries text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transforms.test_merkle import mth
from transforms import merkle
from transforms.jcs import canonicalize, json_string
from transforms.leaves import leaf_object, leaf_text
from transforms.period_roots import leaf_hash_rows, leaf_hashes, period_roots, tree_roots

# Text that JSON can carry: any code point but lone surrogates.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
# Keys that sort differently by UTF-16 code units and by code points (U+E000.. vs U+10000..).
KEYS = st.one_of(
    TEXT.filter(bool),
    st.sampled_from(["\ufb01", "\U0001f600", "\ue000", "a", "\u00e9", "\U00010000", "\uffff"]),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)


@given(JSON)
def test_canonicalize_equals_rfc8785(value: object) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


@given(st.lists(TEXT, max_size=10))
def test_vectorised_string_escaping_equals_rfc8785(texts: list[str]) -> None:
    got = pl.select(json_string(pl.Series(texts, dtype=pl.String))).to_series().to_list()
    assert got == [rfc8785.dumps(t).decode() for t in texts]


IDS = st.text(alphabet="abcXYZ019_.:-", min_size=1, max_size=20).filter(
    lambda s: s not in (".", "..")
)
AMOUNTS = st.decimals(
    min_value=Decimal("-1000000000"), max_value=Decimal("1000000000"), places=6, allow_nan=False
).filter(lambda d: d != 0)
METADATA = st.none() | st.dictionaries(
    KEYS.filter(lambda k: len(k) <= 40), TEXT, min_size=1, max_size=5
)
DELTAS = st.fixed_dictionaries(
    {
        "tenant_id": IDS,
        "environment": st.sampled_from(["sandbox", "production"]),
        "customer_id": st.sampled_from(["c1", "c:2"]),
        "delta_id": IDS,
        "amount": AMOUNTS,
        "reason": TEXT.filter(bool),
        "reference_id": st.none() | TEXT.filter(bool),
        "metadata": METADATA,
        "occurred_at_utc": st.datetimes(
            min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1)
        ).map(lambda d: d.replace(tzinfo=UTC)),
        "salt": st.binary(min_size=32, max_size=32).map(bytes.hex),
    }
)


def as_frame(deltas: list[dict]) -> pl.DataFrame:
    rows = []
    for d in deltas:
        rows.append(
            {
                **d,
                "period": d["occurred_at_utc"].strftime("%Y-%m"),
                "metadata": rfc8785.dumps(d["metadata"]).decode() if d["metadata"] else None,
            }
        )
    frame = pl.DataFrame(
        rows,
        schema_overrides={
            "amount": pl.Decimal(18, 6),
            "occurred_at_utc": pl.Datetime("us", "UTC"),
            "reference_id": pl.String,
            "metadata": pl.String,
        },
        infer_schema_length=None,
    )
    return frame.with_columns(
        leaf_index=pl.int_range(pl.len()).over("tenant_id", "environment", "customer_id", "period")
    )


@settings(max_examples=150)
@given(st.lists(DELTAS, min_size=1, max_size=12))
def test_leaf_text_equals_jcs_of_the_leaf_object(deltas: list[dict]) -> None:
    frame = as_frame(deltas)
    texts = leaf_text(frame.lazy()).collect()["leaf"].to_list()
    for row, text in zip(frame.to_dicts(), texts, strict=True):
        obj = leaf_object(row)
        assert text.encode() == rfc8785.dumps(obj)
        if row["metadata"]:
            assert obj["metadata"] == json.loads(row["metadata"])


@settings(max_examples=60)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 2)), max_size=120))
def test_period_roots_equal_the_rfc_recursion(spec: list[tuple[str, int]]) -> None:
    start = datetime(2026, 1, 15, tzinfo=UTC)
    deltas = [
        {
            "tenant_id": "t",
            "environment": "production",
            "customer_id": c,
            "delta_id": f"d{i}",
            "amount": Decimal(i + 1),
            "reason": f'r{i} é\n"',
            "reference_id": None,
            "metadata": None,
            "salt": "00" * 32,
            "occurred_at_utc": start + timedelta(days=31 * m),
        }
        for i, (c, m) in enumerate(spec)
    ]
    if not deltas:
        return
    frame = as_frame(deltas).sort("tenant_id", "environment", "customer_id", "period", "leaf_index")
    leaves = leaf_text(frame.lazy())
    roots = period_roots(leaf_hashes(leaves).lazy())
    expected = {}
    for key, group in leaves.collect().group_by("customer_id", "period"):
        expected[key] = mth([t.encode() for t in group.sort("leaf_index")["leaf"]])
    got = {(r["customer_id"], r["period"]): r["root"] for r in roots.to_dicts()}
    assert got == expected
    assert all(roots["tree_size"] > 0)
    assert merkle.EMPTY_ROOT not in got.values()


def test_period_roots_of_no_leaves_is_an_empty_frame() -> None:
    schema = {c: pl.String for c in ("tenant_id", "environment", "customer_id", "period")}
    empty = pl.DataFrame(schema=schema | {"leaf_index": pl.Int64, "leaf_hash": pl.Binary})
    roots = period_roots(empty.lazy())
    assert roots.is_empty()
    assert roots.columns == [*schema, "tree_size", "root"]


@pytest.mark.parametrize(
    ("customers", "indices", "problem"),
    [
        (["a", "a", "b"], [1, 2, 0], "start with leaf index 0"),
        (["a", "a", "a"], [0, 2, 3], "count up from 0"),
        (["a", "b", "b"], [0, 1, 2], "sorted by tree"),  # two trees as one run of indices
        (["a", "b", "a"], [0, 0, 1], "sorted by tree"),
    ],
)
def test_period_roots_refuse_leaves_that_are_not_whole_sorted_trees(
    customers, indices, problem
) -> None:
    hashes = pl.DataFrame(
        {
            "tenant_id": "t",
            "environment": "production",
            "customer_id": customers,
            "period": "2026-01",
            "leaf_index": indices,
            "leaf_hash": [bytes(32)] * len(indices),
        }
    )
    with pytest.raises(ValueError, match=problem):
        period_roots(hashes.lazy())


@pytest.mark.parametrize(("leaves_per_call", "leaves_per_task"), [(4, 16), (7, 5), (7, 1 << 18)])
def test_period_roots_in_small_hashing_calls_are_the_same(
    monkeypatch, leaves_per_call, leaves_per_task
) -> None:
    # Leaves are hashed in slices of LEAVES_PER_CALL (820 leaves: 4 divides them, 7 does not)
    # and a level's node hashes in slices of PAIRS_PER_CALL; with slices of three, every tree
    # size from 1 to 40 spans several of them. Trees of up to LEAVES_PER_TASK leaves are
    # reduced in groups, one per thread, and the larger ones together after them: with 16,
    # there are groups of one tree and of several, and 24 larger trees; with 5, 35.
    monkeypatch.setattr("transforms.period_roots.LEAVES_PER_CALL", leaves_per_call)
    monkeypatch.setattr("transforms.period_roots.PAIRS_PER_CALL", 3)
    monkeypatch.setattr("transforms.period_roots.LEAVES_PER_TASK", leaves_per_task)
    sizes = list(range(1, 41))
    frame = pl.DataFrame(
        {
            "tenant_id": "t",
            "environment": "production",
            "customer_id": [f"c{size:02d}" for size in sizes for _ in range(size)],
            "period": "2026-01",
            "leaf_index": [i for size in sizes for i in range(size)],
            "leaf": [f"leaf {size} {i}" for size in sizes for i in range(size)],
        }
    )
    hashes = leaf_hashes(frame.lazy())
    assert hashes.height == frame.height
    roots = period_roots(hashes.lazy())
    got = dict(zip(roots["customer_id"], roots["root"], strict=True))
    for size in sizes:
        assert got[f"c{size:02d}"] == mth([f"leaf {size} {i}".encode() for i in range(size)])


def test_leaf_hash_rows_are_the_leaf_hashes_and_refuse_what_is_not_a_leaf() -> None:
    frame = pl.DataFrame(
        {
            "tenant_id": "t",
            "environment": "production",
            "customer_id": ["a", "a", "b"],
            "period": "2026-01",
            "leaf_index": [0, 1, 0],
            "leaf": ["x", "y", "z"],
        }
    )
    keys, rows = leaf_hash_rows(frame)
    assert keys.columns == ["tenant_id", "environment", "customer_id", "period", "leaf_index"]
    assert [row.tobytes() for row in rows] == [merkle.leaf_hash(t.encode()) for t in "xyz"]
    assert rows.tobytes() == b"".join(leaf_hashes(frame)["leaf_hash"])
    roots = tree_roots(keys, rows)
    assert roots["root"].to_list() == [mth([b"x", b"y"]), mth([b"z"])]
    with pytest.raises(ValueError, match="2 leaf hashes for 3 leaves"):
        tree_roots(keys, rows[:2])
    with pytest.raises(ValueError, match="must not be null"):
        leaf_hash_rows(frame.with_columns(leaf=pl.Series([None, "y", "z"], dtype=pl.String)))
