"""Sampling (SPEC section 5) against the worked example, and output paths that cannot escape."""

from __future__ import annotations

import json
import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import SHARED
from transforms.paths import partition_path, partition_value, path_segment
from transforms.sampling import sample_indices, sample_seed

EXAMPLE = json.loads((SHARED / "vectors" / "tallyproof_examples.json").read_text())


@pytest.mark.parametrize("name", ["sampling", "sampling_large"])
def test_sampling_examples(name: str) -> None:
    case = EXAMPLE[name]
    seed = sample_seed(case["fingerprint"], case["nonce"])
    if "seed" in case:
        assert seed.hex() == case["seed"]
    assert sample_indices(seed, case["population"], case["size"]) == case["indices"]


@given(st.binary(min_size=32, max_size=32), st.integers(1, 50), st.integers(1, 60))
def test_samples_are_distinct_sorted_and_in_range(seed: bytes, population: int, size: int) -> None:
    got = sample_indices(seed, population, size)
    assert got == sorted(set(got))
    assert len(got) == min(size, population)
    assert all(0 <= i < population for i in got)


def test_an_empty_population_cannot_be_sampled() -> None:
    with pytest.raises(ValueError):
        sample_indices(b"\0" * 32, 0, 1)


@given(st.text(min_size=1, max_size=30))
def test_no_identifier_leaves_its_folder(identifier: str) -> None:
    for encode in (path_segment, partition_value):
        segment = encode(identifier)
        assert segment not in ("", ".", "..")
        assert "/" not in segment and "\\" not in segment
        path = posixpath.normpath(f"exports/acme/{segment}/x.csv")
        assert path.startswith("exports/acme/") and path.count("/") == 3


def test_ordinary_identifiers_stay_readable() -> None:
    assert path_segment("cust:2") == "cust:2"
    assert path_segment("..") == "%2E%2E"
    assert (
        partition_path("deltas", "cust:2", "sandbox", "2026-03")
        == "parquet/deltas/tenant=cust%3A2/environment=sandbox/period=2026-03"
    )
