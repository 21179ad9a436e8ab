-- tracehive embedded store, schema version 4 (trace index keys: 8 bytes in 1, 4 in 2, 5 since 3;
-- trace ids BLOB until 3, UHUGEINT since 4).
-- The events table's fixed columns are generated
-- from storage/schema.py (PHYSICAL_FIXED); attribute columns a<N> are added as keys appear.
CREATE TABLE IF NOT EXISTS attr_columns (
    id INTEGER PRIMARY KEY,
    key VARCHAR NOT NULL,
    attr_type VARCHAR NOT NULL,
    physical VARCHAR NOT NULL,
    UNIQUE (key, attr_type)
);
CREATE TABLE IF NOT EXISTS dataset_columns (
    env_id USMALLINT NOT NULL,
    dataset_id UINTEGER NOT NULL,
    column_id INTEGER NOT NULL,
    last_written_ns BIGINT NOT NULL,
    PRIMARY KEY (env_id, dataset_id, column_id)
);
-- One row per (trace, write batch): the trace id's first 5 bytes and the batch's seq. A lookup by
-- trace id reads this small table, then only the row groups of those seqs (zone maps on seq).
-- See trace_index.py.
CREATE TABLE IF NOT EXISTS trace_index (
    trace_key UBIGINT NOT NULL,
    seq UBIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_state (
    key VARCHAR PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT OR IGNORE INTO store_state VALUES ('schema_version', 4), ('wal_position', 0), ('wal_partial', 0),
    ('seq', 0);
CREATE TABLE IF NOT EXISTS metric_points (
    env_id USMALLINT NOT NULL,
    dataset_id UINTEGER NOT NULL,
    ts_ns BIGINT NOT NULL,
    start_ts_ns BIGINT,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    service VARCHAR,
    unit VARCHAR,
    description VARCHAR,
    value DOUBLE,
    is_monotonic BOOLEAN,
    temporality TINYINT,
    count UBIGINT,
    sum DOUBLE,
    min DOUBLE,
    max DOUBLE,
    bucket_counts UBIGINT[],
    explicit_bounds DOUBLE[],
    scale INTEGER,
    zero_count UBIGINT,
    positive_offset INTEGER,
    positive_counts UBIGINT[],
    negative_offset INTEGER,
    negative_counts UBIGINT[],
    quantiles STRUCT(q DOUBLE, v DOUBLE)[],
    attributes JSON
);
