"""CSV text: RFC 4180 quoting that Python's csv module reads back, and the formula guard."""

from __future__ import annotations

import csv
import io

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from transforms.csv_text import Column, csv_header, csv_line

TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)


def render(values: list[str | None], *, text: bool) -> list[list[str]]:
    frame = pl.DataFrame(
        {"v": values, "n": ["1"] * len(values)}, schema={"v": pl.String, "n": pl.String}
    )
    columns = [Column("value", pl.col("v"), text=text), Column("n", pl.col("n"))]
    lines = frame.select(line=csv_line(columns))["line"].to_list()
    document = csv_header(columns) + "".join(f"{line}\r\n" for line in lines)
    return list(csv.reader(io.StringIO(document, newline="")))


@given(st.lists(TEXT, max_size=10))
def test_numbers_and_plain_cells_round_trip(values: list[str]) -> None:
    rows = render(values, text=False)
    assert rows[0] == ["value", "n"]
    assert [r[0] for r in rows[1:]] == values


@given(st.lists(TEXT, max_size=10))
def test_text_cells_are_guarded_against_formulas(values: list[str]) -> None:
    rows = render(values, text=True)
    for value, row in zip(values, rows[1:], strict=True):
        if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            assert row[0] == "'" + value
        else:
            assert row[0] == value


def test_nulls_are_empty_cells() -> None:
    assert render([None, "x"], text=True)[1:] == [["", "1"], ["x", "1"]]


def test_examples() -> None:
    rows = render(["=SUM(A1)", 'a "b", c', "line\nbreak", "-12.5"], text=True)
    assert [r[0] for r in rows[1:]] == ["'=SUM(A1)", 'a "b", c', "line\nbreak", "'-12.5"]
