-- Publications: every one this warehouse recorded, in order. Grain: publication. `manifest` is
-- the path LATEST named once it was switched, so the output root that holds the last one is
-- the root this warehouse's inventory (`published_files`) describes.
CREATE TABLE IF NOT EXISTS publications (
    seq             BIGINT NOT NULL,       -- 1, 2, ... in the order they were recorded
    publication_id  VARCHAR NOT NULL,
    manifest        VARCHAR NOT NULL,
    recorded_at     TIMESTAMP NOT NULL
);
