"""RFC 6962 / RFC 9162 against the public vectors and a recursive transcription of the RFC."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import SHARED
from transforms import merkle
from transforms.period_roots import consistency_proof_hashes

VECTORS = SHARED / "vectors"
PROBES = VECTORS / "transparency-dev-merkle" / "testdata"


# --- RFC 6962 section 2.1, transcribed literally (the reference) ------------------------------
def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


# --- transparency-dev probes --------------------------------------------------------------------
def _probes(kind: str) -> list[Path]:
    return sorted((PROBES / kind).rglob("*.json"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


@pytest.mark.parametrize("probe", _probes("inclusion"), ids=lambda p: str(p.relative_to(PROBES)))
def test_inclusion_probes(probe: Path) -> None:
    case = json.loads(probe.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("probe", _probes("consistency"), ids=lambda p: str(p.relative_to(PROBES)))
def test_consistency_probes(probe: Path) -> None:
    case = json.loads(probe.read_text())
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_probe_counts_match_the_readme() -> None:
    inclusion = [json.loads(p.read_text()) for p in _probes("inclusion")]
    consistency = [json.loads(p.read_text()) for p in _probes("consistency")]
    assert (len(inclusion), sum(not c["wantErr"] for c in inclusion)) == (98, 6)
    assert (len(consistency), sum(not c["wantErr"] for c in consistency)) == (98, 6)


# --- the reference tree of 8 leaves -------------------------------------------------------------
REFERENCE = json.loads((VECTORS / "rfc6962_reference_tree.json").read_text())
LEAVES = [bytes.fromhex(h) for h in REFERENCE["leaf_inputs_hex"]]
HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def test_reference_leaf_hashes_and_roots() -> None:
    assert [h.hex() for h in HASHES] == REFERENCE["leaf_hashes_hex"]
    for size, want in REFERENCE["root_hash_by_tree_size_hex"].items():
        assert merkle.root(LEAVES[: int(size)]).hex() == want
        assert merkle.MerkleTree(HASHES[: int(size)]).root.hex() == want


def test_hasher_unit_vectors() -> None:
    wants = {v["desc"]: v["want"] for v in REFERENCE["hasher_unit_vectors"]}
    assert merkle.EMPTY_ROOT.hex() == wants["empty tree root = SHA-256('')"]
    assert merkle.leaf_hash(b"").hex() == wants["leaf hash of empty leaf = SHA-256(0x00)"]
    assert merkle.leaf_hash(b"L123456").hex() == wants["leaf hash of 'L123456'"]
    node = "node hash of children 'N123','N456' (raw bytes, not 32-byte hashes)"
    assert merkle.node_hash(b"N123", b"N456").hex() == wants[node]


def test_every_reference_inclusion_proof() -> None:
    cases = REFERENCE["derived_inclusion_proofs_all"] + REFERENCE["published_inclusion_proofs"]
    for case in cases:
        tree = merkle.MerkleTree(HASHES[: case["tree_size"]])
        got = tree.inclusion_path(case["leaf_index"])
        assert [h.hex() for h in got] == case["path_hex"]
        merkle.verify_inclusion(
            case["leaf_index"], tree.size, HASHES[case["leaf_index"]], got, tree.root
        )


def test_every_reference_consistency_proof() -> None:
    cases = REFERENCE["derived_consistency_proofs_all"] + REFERENCE["published_consistency_proofs"]
    for case in cases:
        m, n = case["size1"], case["size2"]
        got = merkle.consistency_proof(m, HASHES[:n])
        assert [h.hex() for h in got] == case["proof_hex"]
        merkle.verify_consistency(
            m, n, merkle.root_from_hashes(HASHES[:m]), merkle.root_from_hashes(HASHES[:n]), got
        )


# --- 130 leaves: roots and the accumulated subtree digests --------------------------------------
ACCUMULATED = json.loads((VECTORS / "rfc6962_130_leaf_accumulated.json").read_text())
D130 = [bytes([i]) for i in range(130)]


def _valid(start: int, end: int) -> bool:
    size = end - start
    return start <= end and (start == 0 or size == 0 or start % (1 << (size - 1).bit_length()) == 0)


def test_130_leaf_roots() -> None:
    for size, want in ACCUMULATED["derived_root_hash_by_size_hex"].items():
        assert merkle.root(D130[: int(size)]).hex() == want


def test_130_leaf_subtree_hash_digest() -> None:
    digest = hashlib.sha256()
    for end in range(131):
        for start in range(end + 1):
            if _valid(start, end):
                digest.update(f"[{start}, {end}) {merkle.root(D130[start:end]).hex()}\n".encode())
    assert digest.hexdigest() == ACCUMULATED["published_accumulated_digest"]["subtree_hash"]["want"]


def test_130_leaf_subtree_inclusion_digest() -> None:
    digest = hashlib.sha256()
    for end in range(131):
        for start in range(end + 1):
            if not _valid(start, end) or start == end:
                continue
            tree = merkle.MerkleTree([merkle.leaf_hash(d) for d in D130[start:end]])
            for index in range(start, end):
                proof = "".join(f" {h.hex()}" for h in tree.inclusion_path(index - start))
                digest.update(f"{index} [{start}, {end}){proof}\n".encode())
    want = ACCUMULATED["published_accumulated_digest"]["subtree_inclusion"]["want"]
    assert digest.hexdigest() == want


# --- properties: the level-by-level build equals the recursion ----------------------------------
TREES = st.lists(st.binary(max_size=40), min_size=1, max_size=70)


@given(TREES, st.data())
def test_levels_equal_the_rfc_recursion(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    tree = merkle.MerkleTree(hashes)
    assert tree.root == mth(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    assert tree.inclusion_path(index) == path(index, leaves)
    merkle.verify_inclusion(
        index, len(leaves), hashes[index], tree.inclusion_path(index), tree.root
    )
    old = data.draw(st.integers(1, len(leaves)))
    proof = merkle.consistency_proof(old, hashes)
    assert proof == subproof(old, leaves, True)
    merkle.verify_consistency(old, len(leaves), mth(leaves[:old]), tree.root, proof)


@given(TREES, st.data())
def test_a_changed_leaf_breaks_inclusion(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    tree = merkle.MerkleTree(hashes)
    index = data.draw(st.integers(0, len(leaves) - 1))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(
            index,
            len(leaves),
            merkle.leaf_hash(leaves[index] + b"!"),
            tree.inclusion_path(index),
            tree.root,
        )


def _subtree_subproof(start: int, end: int, d: list[bytes], b: bool) -> list[bytes]:
    """Consistency of the subtree [start, end) with D[n] (draft-ietf-plants-merkle-tree-certs):
    RFC 6962's SUBPROOF, recursing into the half that holds the subtree."""
    n = len(d)
    if start == 0 and end == n:
        return [] if b else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if end <= k:
        return _subtree_subproof(start, end, d[:k], b) + [mth(d[k:])]
    if start >= k:
        return _subtree_subproof(start - k, end - k, d[k:], b) + [mth(d[:k])]
    return _subtree_subproof(0, end - k, d[k:], False) + [mth(d[:k])]


def test_130_leaf_subtree_consistency_digest() -> None:
    digest = hashlib.sha256()
    for n in range(131):
        for end in range(n + 1):
            for start in range(end + 1):
                if not _valid(start, end):
                    continue
                proof = [] if start == end else _subtree_subproof(start, end, D130[:n], True)
                if start == 0 and 0 < end < n:  # the RFC 6962 case, with this module
                    hashes = [merkle.leaf_hash(d) for d in D130[:n]]
                    assert proof == merkle.consistency_proof(end, hashes)
                line = f"[{start}, {end}) {n}" + "".join(f" {h.hex()}" for h in proof)
                digest.update(f"{line}\n".encode())
    want = ACCUMULATED["published_accumulated_digest"]["subtree_consistency"]["want"]
    assert digest.hexdigest() == want


def test_consistency_proofs_of_many_trees_at_once_equal_one_by_one() -> None:
    # Every (m, n) up to 40 leaves, laid one tree after the other in one array, as the
    # checkpoint pass hands them over; each tree has its own leaves.
    trees, hashes = [], []
    for n in range(1, 41):
        for m in range(1, n + 1):
            tree = [merkle.leaf_hash(f"{m}/{n}/{i}".encode()) for i in range(n)]
            trees.append((m, len(hashes), n, tree))
            hashes += tree
    rows = np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, 32)
    got = consistency_proof_hashes(rows, [(m, start, n) for m, start, n, _ in trees])
    assert got == [merkle.consistency_proof(m, tree) for m, _, n, tree in trees]
    assert consistency_proof_hashes(rows, []) == []


def test_a_compact_range_grows_roots_and_proves_as_the_whole_tree_does() -> None:
    # Every (m, n) up to 70 leaves: the range of m extended by leaves m..n-1 is the range of n,
    # folds to MTH(D[n]), and proves PROOF(m, D[n]) without the leaves before m.
    hashes = [merkle.leaf_hash(str(i).encode()) for i in range(70)]
    for n in range(71):
        tree = hashes[:n]
        spans = merkle.compact_range_spans(n)
        assert [b - a for a, b in spans] == sorted(
            (1 << i for i in range(8) if n >> i & 1), reverse=True
        )
        nodes = [merkle.root_from_hashes(tree[a:b]) for a, b in spans]
        assert merkle.compact_range_root(nodes) == merkle.root_from_hashes(tree)
        assert merkle.extend_compact_range([], 0, tree) == nodes
        for m in range(1, n + 1):
            old = [merkle.root_from_hashes(tree[a:b]) for a, b in merkle.compact_range_spans(m)]
            assert merkle.extend_compact_range(old, m, tree[m:]) == nodes
            assert merkle.consistency_proof_from_range(m, old, tree[m:]) == (
                merkle.consistency_proof(m, tree)
            )
    with pytest.raises(ValueError, match="compact range"):
        merkle.extend_compact_range(hashes[:1], 3, hashes[3:4])


def test_period_roots_take_every_trees_compact_range_from_its_levels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import polars as pl

    from transforms.period_roots import extended_trees, period_roots

    monkeypatch.setattr("transforms.period_roots.PAIRS_PER_CALL", 3)  # levels in many slices
    # Groups of small trees on the threads, and the trees of more than 32 leaves after them.
    monkeypatch.setattr("transforms.period_roots.LEAVES_PER_TASK", 32)
    sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 100, 129, 130]
    trees = {
        f"c{t:03d}": [merkle.leaf_hash(f"{t}/{i}".encode()) for i in range(n)]
        for t, n in enumerate(sizes)
    }
    leaves = pl.DataFrame(
        [("t", "e", c, "2026-01", i, h) for c, tree in trees.items() for i, h in enumerate(tree)],
        schema=["tenant_id", "environment", "customer_id", "period", "leaf_index", "leaf_hash"],
        orient="row",
    )
    whole = period_roots(leaves.lazy(), compact_ranges=True)
    for customer, root, compact_range in whole.select(
        "customer_id", "root", "compact_range"
    ).iter_rows():
        tree = trees[customer]
        assert root == merkle.root_from_hashes(tree)
        spans = merkle.compact_range_spans(len(tree))
        assert compact_range == b"".join(merkle.root_from_hashes(tree[a:b]) for a, b in spans)

    # The same trees grown from their first half (at least one leaf) by the rest alone.
    halves = {c: max(1, len(tree) // 2) for c, tree in trees.items() if len(tree) > 1}
    first = period_roots(
        leaves.filter(
            pl.col("leaf_index") < pl.col("customer_id").replace_strict(halves, default=0)
        ).lazy(),
        compact_ranges=True,
    )
    grown = extended_trees(
        first.select(
            "tenant_id",
            "environment",
            "customer_id",
            "period",
            latest_tree_size=pl.col("tree_size").cast(pl.Int64),
            tree_size=pl.col("customer_id").replace_strict({c: len(t) for c, t in trees.items()}),
            latest_compact_range="compact_range",
        ),
        leaves.filter(
            pl.col("leaf_index") >= pl.col("customer_id").replace_strict(halves, default=1 << 30)
        ),
    )
    assert grown.select("customer_id", "root", "compact_range").rows() == (
        whole.filter(pl.col("customer_id").is_in(list(halves)))
        .select("customer_id", "root", "compact_range")
        .rows()
    )
    assert grown["consistency_proof"].to_list() == [
        merkle.consistency_proof(halves[c], trees[c]) for c in grown["customer_id"]
    ]
    # New leaves that do not continue the last version are refused, not hashed into a tree.
    with pytest.raises(ValueError, match="not indices"):
        extended_trees(
            first.head(1).select(
                "tenant_id",
                "environment",
                "customer_id",
                "period",
                latest_tree_size=pl.col("tree_size").cast(pl.Int64) + 1,
                tree_size=pl.lit(len(trees["c001"])),
                latest_compact_range="compact_range",
            ),
            leaves.filter((pl.col("customer_id") == "c001") & (pl.col("leaf_index") >= 1)),
        )
