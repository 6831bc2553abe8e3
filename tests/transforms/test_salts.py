"""Leaf salts: the vectorised HMAC equals the standard library's, for any key."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from transforms.salts import salt, salt_expr

IDS = st.text(alphabet="abcXYZ019_.:-", min_size=1, max_size=40)


@given(key=st.binary(min_size=0, max_size=130), rows=st.lists(st.tuples(IDS, IDS), max_size=20))
def test_vectorised_salts_equal_hmac(key: bytes, rows: list[tuple[str, str]]) -> None:
    frame = pl.DataFrame(
        {"t": [r[0] for r in rows], "d": [r[1] for r in rows]},
        schema={"t": pl.String, "d": pl.String},
    )
    got = frame.select(salt_expr(key, pl.col("t"), pl.lit("production"), pl.col("d")))
    assert got.to_series().to_list() == [salt(key, t, "production", d) for t, d in rows]


def test_the_worked_example_salt() -> None:
    assert (
        salt(b"example-salt-key", "acme", "production", "d5")
        == "66d212b372c5d4d7e97fcf9bbde654395731932ce5135be2ab9e39a7813677b9"
    )
