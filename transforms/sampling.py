"""Verification-package sampling, `sha256-ctr/v1` (SPEC section 5).

The indices follow from the checkpoint's fingerprint and a nonce alone, so a verifier recomputes
them and a package cannot be cherry-picked. Rejection sampling keeps every index equally likely.
"""

from __future__ import annotations

import hashlib

METHOD = "sha256-ctr/v1"
_TWO_64 = 1 << 64


def sample_seed(fingerprint: str, nonce: str) -> bytes:
    return hashlib.sha256(f"tallyproof/sample/v1\n{fingerprint}\n{nonce}".encode()).digest()


def sample_indices(seed: bytes, population: int, size: int) -> list[int]:
    """min(size, population) distinct indices in [0, population), sorted."""
    if population <= 0:
        raise ValueError("an empty population cannot be sampled")
    wanted = min(size, population)
    limit = _TWO_64 - (_TWO_64 % population)
    taken: set[int] = set()
    counter = 0
    while len(taken) < wanted:
        digest = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        value = int.from_bytes(digest[:8], "big")
        if value < limit:
            taken.add(value % population)
        counter += 1
    return sorted(taken)
