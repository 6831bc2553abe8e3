-- The compact range of each checkpoint version's tree (transforms.merkle.compact_range_spans):
-- the roots of the perfect subtrees its leaves fall into, largest first, 32 bytes each, one
-- after the other. Not part of any output: what lets the next version of the same tree hash
-- only the leaves it adds. Versions made before this table existed have no row; their next
-- version hashes its whole tree and has one.
CREATE TABLE IF NOT EXISTS compact_ranges (
    fingerprint        VARCHAR NOT NULL,
    compact_range      BLOB NOT NULL
);
