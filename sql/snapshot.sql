-- Reader snapshots (lamostdb/catalog/snapshot.py): what a commit publishes.

-- name: published_tables
-- Every table of catalog.duckdb, published for readers as Parquet.
SELECT table_name
FROM duckdb_tables()
WHERE database_name = current_database()
  AND schema_name = 'main'
  AND NOT temporary
ORDER BY table_name;

-- name: committed_files
-- The committed data files of every Parquet table.
SELECT table_name, path FROM files ORDER BY table_name, path;

-- name: table_fingerprint
-- Row count and the sum of the rows' hashes of one table (the relation published_table):
-- a table whose fingerprint did not change since the last snapshot is linked, not rewritten.
SELECT
    count(*) AS n_rows,
    CAST(coalesce(sum(CAST(hash(published_table) AS HUGEINT)), 0) AS VARCHAR) AS hash_sum
FROM published_table;
