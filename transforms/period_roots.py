"""Merkle roots of every (tenant, environment, customer, period) tree at once.

One pass over all leaves, never a query, frame or call per tree: leaves are hashed as one
column, then every tree is reduced level by level together. At each level a node at an even
index is paired with the next row when that row is its sibling in the same tree, or promoted
unchanged when it is the lone last node (which is RFC 6962's tree exactly, see
`transforms.merkle.MerkleTree`). SHA-256 runs in polars-hash's Rust, on the bytes; hashes travel
between levels as hex because Polars has no binary concatenation.
"""

from __future__ import annotations

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` expression namespace)

from transforms.ledger import TREE


def leaf_hashes(leaves: pl.LazyFrame) -> pl.LazyFrame:
    """TREE, `leaf_index` and `leaf_hash` (32 bytes: SHA-256(0x00 || leaf)) per leaf."""
    prefixed = pl.concat_str(pl.lit("\x00"), pl.col("leaf"))
    return leaves.select(*TREE, "leaf_index", leaf_hash=_sha256(prefixed))


def _sha256(data: pl.Expr) -> pl.Expr:
    return data.chash.sha2_256().str.decode("hex")


def period_roots(hashes: pl.LazyFrame) -> pl.DataFrame:
    """TREE, `tree_size` and `root` (32 bytes) of every tree in `hashes` (from `leaf_hashes`).

    `hashes` must be sorted by TREE and `leaf_index`, and each tree's indices be 0..n-1: then a
    tree is a run of rows and numbering the trees is a running count of key changes.
    """
    starts = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in TREE)
    numbered = hashes.with_columns(_tree=starts.fill_null(True).cum_sum().cast(pl.UInt32))
    level, trees = pl.collect_all(
        [
            numbered.select(
                "_tree", index=pl.col("leaf_index").cast(pl.UInt32), node=pl.col("leaf_hash")
            ),
            numbered.group_by("_tree").agg(*(pl.col(c).first() for c in TREE), tree_size=pl.len()),
        ]
    )
    while level.height > trees.height:
        level = _next_level(level)
    return trees.join(level.select("_tree", root="node"), on="_tree").select(
        *TREE, "tree_size", "root"
    )


def _next_level(level: pl.DataFrame) -> pl.DataFrame:
    """Parents of one level of every tree: a left node with a right sibling is hashed with it,
    a lone last node is promoted unchanged (its concatenation is null, so it is not hashed)."""
    right = pl.when(pl.col("_tree").shift(-1) == pl.col("_tree")).then(pl.col("node").shift(-1))
    return (
        level.lazy()
        .with_columns(_right=right)
        .filter(pl.col("index") % 2 == 0)
        .select(
            "_tree",
            index=pl.col("index") // 2,
            node=pl.coalesce(
                _sha256(pl.lit(b"\x01") + pl.col("node") + pl.col("_right")), pl.col("node")
            ),
        )
        .collect()
    )
