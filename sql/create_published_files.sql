-- The published-file inventory: what the output root holds, as the last completed publication
-- left it. Grain: one row per slot: a fixed path, or one shard of one Parquet partition
-- (`<folder>#<shard>`). A publication rewrites a slot only when its bytes change.
CREATE TABLE IF NOT EXISTS published_files (
    slot            VARCHAR NOT NULL,
    path            VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,      -- parquet | fixed
    bytes           BIGINT NOT NULL,
    rows            BIGINT NOT NULL,
    sha256          VARCHAR NOT NULL,
    publication_id  VARCHAR NOT NULL
);
