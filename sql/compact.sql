-- Compaction (lamostdb/catalog/compact.py) and retired files (lamostdb/catalog/retire.py).

-- name: create_retired_files
-- Committed files that a later run replaced (compaction): out of the files table, kept
-- under _retired/ while a reader snapshot may still read them, then removed.
CREATE TABLE IF NOT EXISTS retired_files (
    path VARCHAR PRIMARY KEY,
    table_name VARCHAR NOT NULL,
    retired_run VARCHAR NOT NULL,
    retired_at TIMESTAMP NOT NULL
);

-- name: record_retired
-- Record the given committed files as retired by a run (in that run's commit).
INSERT INTO retired_files
SELECT path, table_name, $run_id AS retired_run, now()::TIMESTAMP AS retired_at
FROM files
WHERE path IN (SELECT unnest($paths::VARCHAR[]));

-- name: drop_files
-- Take the given files out of the files table (after record_retired).
DELETE FROM files WHERE path IN (SELECT unnest($paths::VARCHAR[]));

-- name: retired_paths
-- Every retired file not removed yet.
SELECT path FROM retired_files ORDER BY path;

-- name: forget_retired
-- A retired file that was removed from disk.
DELETE FROM retired_files WHERE path = $path;

-- name: table_leaves
-- Leaves (distinct pixels) of the committed files of one table.
SELECT DISTINCT norder, npix FROM files WHERE table_name = $table_name ORDER BY norder, npix;
