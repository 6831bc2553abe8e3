"""RFC 6962 Merkle trees over SHA-256: hashes, roots, audit paths, consistency proofs, and their
verification as RFC 9162 sections 2.1.3.2 and 2.1.4.2 write it.

This module is the small, exact core that proofs and verifiers use one tree at a time. Roots of
millions of trees at once are `transforms.period_roots`; tests check both against a recursive
transcription of RFC 6962 section 2.1 and against the public vectors in `../shared/vectors/`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, with the reason."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """All levels of one tree, built bottom-up from its leaf hashes.

    Pairing neighbours level by level and promoting a lone last node unchanged gives exactly
    RFC 6962's split at the largest power of two (its left subtree is always perfect). Keeping
    the levels makes every audit path a walk up them, so a package of a thousand samples costs
    one tree build, not a thousand.
    """

    def __init__(self, hashes: Sequence[bytes]) -> None:
        self.size = len(hashes)
        self.levels: list[list[bytes]] = [list(hashes)]
        while len(self.levels[-1]) > 1:
            level = self.levels[-1]
            paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                paired.append(level[-1])
            self.levels.append(paired)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def inclusion_path(self, index: int) -> list[bytes]:
        """PATH(m, D[n]): the sibling of the leaf first, up to the child of the root."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf index {index} is outside a tree of {self.size}")
        path = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):  # else the node is promoted: no sibling on this level
                path.append(level[sibling])
            index >>= 1
        return path


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    return MerkleTree(hashes).root


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of raw leaves."""
    return root_from_hashes([leaf_hash(leaf) for leaf in leaves])


def consistency_proof(old_size: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) from the leaf hashes of the new tree (RFC 6962 section 2.1.2)."""
    return [root_from_hashes(hashes[a:b]) for a, b in proof_ranges(old_size, len(hashes))]


def proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges [a, b) whose roots, in this order, are PROOF(m, D[n]) (RFC 6962 section
    2.1.2): the proof's shape depends on the two sizes alone, so many trees' proofs can be
    hashed together (`transforms.period_roots.consistency_proof_hashes`)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    return _subproof(old_size, 0, new_size, True)


def _subproof(m: int, start: int, end: int, complete: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[start:end], b) as ranges of leaves."""
    n = end - start
    if m == n:
        return [] if complete else [(start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, start, start + k, complete), (start + k, end)]
    return [*_subproof(m - k, start + k, end, False), (start, start + k)]


# --- compact ranges -----------------------------------------------------------------------
# The compact range of a tree of n leaves is the roots of the perfect subtrees its leaves fall
# into, largest first: one per set bit of n. It is all a tree needs to grow: appending leaves,
# the root, and a consistency proof from n to any larger size (every range of `proof_ranges(n,
# ...)` before n is one of these subtrees; the rest lie wholly in the new leaves). So a new
# version of a checkpoint hashes only the leaves it adds.


def compact_range_spans(size: int) -> list[tuple[int, int]]:
    """The leaf ranges [a, b) of the compact range of a tree of `size` leaves, largest first."""
    spans, start = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            spans.append((start, start + (1 << bit)))
            start += 1 << bit
    return spans


def extend_compact_range(nodes: Sequence[bytes], size: int, hashes: Sequence[bytes]) -> list[bytes]:
    """The compact range of a tree of `size` leaves (`nodes`) after appending leaf `hashes`."""
    if len(nodes) != size.bit_count():
        raise ValueError(f"a compact range of {len(nodes)} nodes for a tree of {size}")
    grown = list(nodes)
    for index, node in enumerate(hashes, start=size):
        while index & 1:  # each trailing one of the index closes a perfect subtree
            node = node_hash(grown.pop(), node)
            index >>= 1
        grown.append(node)
    return grown


def compact_range_root(nodes: Sequence[bytes]) -> bytes:
    """MTH of the tree whose compact range is `nodes` (RFC 6962 splits off the largest perfect
    subtree on the left, so the root folds the range from the right)."""
    if not nodes:
        return EMPTY_ROOT
    root = nodes[-1]
    for node in reversed(nodes[:-1]):
        root = node_hash(node, root)
    return root


def consistency_proof_from_range(
    old_size: int, nodes: Sequence[bytes], hashes: Sequence[bytes]
) -> list[bytes]:
    """PROOF(m, D[n]) from the compact range of the first m leaves (`nodes`) and the hashes of
    the n - m leaves after them: no leaf before m is needed."""
    known = dict(zip(compact_range_spans(old_size), nodes, strict=True))
    proof = []
    for a, b in proof_ranges(old_size, old_size + len(hashes)):
        if b <= old_size:
            proof.append(known[(a, b)])
        elif a >= old_size:
            proof.append(root_from_hashes(hashes[a - old_size : b - old_size]))
        else:  # pragma: no cover - RFC 6962's proofs never straddle the old size
            raise AssertionError(f"a proof range {a}-{b} straddles the old size {old_size}")
    return proof


def _check_hashes(*values: bytes) -> None:
    for value in values:
        if len(value) != HASH_SIZE:
            raise ProofError(f"a hash of {len(value)} bytes (expected {HASH_SIZE})")


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, path: Sequence[bytes], expected_root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2, with `leaf` the leaf *hash*. Raises ProofError."""
    _check_hashes(leaf, expected_root, *path)
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            raise ProofError("the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the path is shorter than the tree is deep")
    if r != expected_root:
        raise ProofError("the path does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2. Raises ProofError.

    Equal sizes need an empty proof and equal roots; a proof from the empty tree is refused
    (it proves nothing), as the transparency-dev vectors expect.
    """
    _check_hashes(*proof)
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"no consistency from size {old_size} to size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError("equal sizes but different roots")
        if old_size == 0:
            raise ProofError("a consistency proof between empty trees proves nothing")
        return
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    _check_hashes(old_root, new_root)
    if not proof:
        raise ProofError("the proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the trees are deep")
    if fr != old_root:
        raise ProofError("the proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new root")
