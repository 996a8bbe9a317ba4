-- The catalogue's bookkeeping tables in catalog.duckdb (contracts: schemas/*.json).

-- name: create_catalog_meta
-- Key/value settings of the catalogue.
CREATE TABLE IF NOT EXISTS catalog_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- name: create_runs
-- One row per stage run with its commit state and the file moves it intends.
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    stage VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    moves VARCHAR NOT NULL,
    summary VARCHAR,
    lamostdb_version VARCHAR NOT NULL
);

-- name: create_files
-- The Parquet files of every table: what readers read.
CREATE TABLE IF NOT EXISTS files (
    table_name VARCHAR NOT NULL,
    path VARCHAR PRIMARY KEY,
    norder TINYINT NOT NULL,
    npix BIGINT NOT NULL,
    n_rows BIGINT NOT NULL,
    n_bytes BIGINT NOT NULL,
    ingest_run VARCHAR NOT NULL
);

-- name: create_ingest_ledger
-- One row per ingested file content.
CREATE TABLE IF NOT EXISTS ingest_ledger (
    sha256 VARCHAR PRIMARY KEY,
    path VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    specid VARCHAR NOT NULL,
    obsid BIGINT,
    night INTEGER,
    version INTEGER NOT NULL,
    ingest_run VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);

-- name: create_spectrum_versions
-- Every delivered version of every spectrum.
CREATE TABLE IF NOT EXISTS spectrum_versions (
    specid VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    sha256 VARCHAR NOT NULL,
    data_v VARCHAR,
    current BOOLEAN NOT NULL,
    ingest_run VARCHAR NOT NULL,
    superseded_by_run VARCHAR,
    PRIMARY KEY (specid, version)
);

-- name: create_quarantine
-- Files that could not be ingested.
CREATE TABLE IF NOT EXISTS quarantine (
    path VARCHAR NOT NULL,
    sha256 VARCHAR PRIMARY KEY,
    size_bytes BIGINT,
    reason VARCHAR NOT NULL,
    ingest_run VARCHAR NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
);

-- name: get_meta
-- One setting.
SELECT value FROM catalog_meta WHERE key = $key;

-- name: set_meta
-- Insert or replace one setting.
INSERT OR REPLACE INTO catalog_meta (key, value) VALUES ($key, $value);

-- name: insert_run
-- Record the intent of a run before any file is moved into place.
INSERT INTO runs (run_id, stage, state, started_at, moves, lamostdb_version)
VALUES ($run_id, $stage, 'committing', now()::TIMESTAMP, $moves, $version);

-- name: finish_run
-- Mark a run committed (in the same transaction as its ledger rows).
UPDATE runs SET state = 'committed', finished_at = now()::TIMESTAMP, summary = $summary
WHERE run_id = $run_id;

-- name: unfinished_runs
-- Runs that recorded an intent but never committed: to roll back.
SELECT run_id, moves FROM runs WHERE state = 'committing' ORDER BY started_at;

-- name: mark_rolled_back
-- A run whose files were removed by recovery.
UPDATE runs SET state = 'rolled_back', finished_at = now()::TIMESTAMP WHERE run_id = $run_id;

-- name: table_files
-- The committed files of one table.
SELECT path, norder, npix, n_rows FROM files WHERE table_name = $table_name ORDER BY path;

-- name: create_ingest_paths
-- One row per file path ever discovered by ingest: its last outcome and its (size, mtime,
-- inode), so that an unchanged path is skipped without reading it.
CREATE TABLE IF NOT EXISTS ingest_paths (
    path VARCHAR PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    inode BIGINT NOT NULL,
    sha256 VARCHAR,
    outcome VARCHAR NOT NULL,
    reason VARCHAR,
    ingest_run VARCHAR NOT NULL,
    checked_at TIMESTAMP NOT NULL
);

-- name: known_paths
-- What the ledger knows of the given paths: (size, mtime, inode), content, last outcome and
-- the lamostdb version that decided it, from ingest_paths; for paths ingested before
-- ingest_paths existed, (size, mtime) from ingest_ledger with a null inode.
WITH wanted AS (SELECT unnest($paths::VARCHAR[]) AS path),
tracked AS (
    SELECT p.path, p.size_bytes, p.mtime_ns, p.inode, p.sha256, p.outcome, p.reason,
           r.lamostdb_version
    FROM ingest_paths AS p
    JOIN wanted USING (path)
    LEFT JOIN runs AS r ON r.run_id = p.ingest_run
)
SELECT * FROM tracked
UNION ALL
SELECT l.path, l.size_bytes, l.mtime_ns, NULL::BIGINT AS inode, l.sha256,
       'ingested' AS outcome, NULL::VARCHAR AS reason, NULL::VARCHAR AS lamostdb_version
FROM ingest_ledger AS l
JOIN wanted USING (path)
ANTI JOIN tracked USING (path);

-- name: known_contents
-- Which of the given contents are stored: their spectrum version, whether it is current,
-- its release and the path that delivered it.
WITH wanted AS (SELECT unnest($shas::VARCHAR[]) AS sha256)
SELECT l.sha256, l.specid, l.version, v.current, v.data_v, l.path
FROM ingest_ledger AS l
JOIN wanted USING (sha256)
LEFT JOIN spectrum_versions AS v ON v.specid = l.specid AND v.version = l.version;

-- name: quarantined_contents
-- Which of the given contents are in quarantine already.
WITH wanted AS (SELECT unnest($shas::VARCHAR[]) AS sha256)
SELECT sha256 FROM quarantine JOIN wanted USING (sha256);

-- name: current_versions
-- The current version of the given specids, with its release.
WITH wanted AS (SELECT unnest($specids::VARCHAR[]) AS specid)
SELECT v.specid, v.version, v.data_v
FROM spectrum_versions AS v
JOIN wanted USING (specid)
WHERE v.current;

-- name: versions_of
-- Stored versions of the given specids.
WITH wanted AS (SELECT unnest($specids::VARCHAR[]) AS specid)
SELECT v.specid, v.version, v.sha256, v.data_v, v.current
FROM spectrum_versions AS v
JOIN wanted USING (specid)
ORDER BY v.specid, v.version;

-- name: insert_ledger_rows
-- Ledger rows of one ingest run (staged_ledger: an Arrow table registered by the caller).
INSERT INTO ingest_ledger
SELECT sha256, path, size_bytes, mtime_ns, specid, obsid, night, version, ingest_run,
       now()::TIMESTAMP AS ingested_at
FROM staged_ledger;

-- name: insert_versions
-- New versions of one ingest run (staged_versions registered by the caller).
INSERT INTO spectrum_versions
SELECT specid, version, sha256, data_v, current, ingest_run, NULL AS superseded_by_run
FROM staged_versions;

-- name: supersede_versions
-- Older versions that a new delivery replaces (staged_superseded registered by the caller).
UPDATE spectrum_versions AS v
SET current = false, superseded_by_run = s.ingest_run
FROM staged_superseded AS s
WHERE v.specid = s.specid AND v.version = s.version;

-- name: insert_quarantine_rows
-- Quarantined files of one ingest run (staged_quarantine registered by the caller).
INSERT INTO quarantine
SELECT path, sha256, size_bytes, reason, ingest_run, now()::TIMESTAMP AS quarantined_at
FROM staged_quarantine;

-- name: restore_versions
-- Make a re-delivered older version current again (staged_restored: specid, version,
-- ingest_run); the version current until now is superseded by this run.
UPDATE spectrum_versions AS v
SET current = (v.version = r.version),
    superseded_by_run = CASE WHEN v.version = r.version THEN NULL
                             WHEN v.current THEN r.ingest_run
                             ELSE v.superseded_by_run END
FROM staged_restored AS r
WHERE v.specid = r.specid;

-- name: clear_quarantine
-- Quarantine rows of files that ingested now (staged_cleared: path, sha256): same path
-- (the file was fixed) or same content (a reader now accepts it).
DELETE FROM quarantine
WHERE path IN (SELECT path FROM staged_cleared)
   OR sha256 IN (SELECT sha256 FROM staged_cleared);

-- name: quarantine_to_clear
-- The quarantine rows that clear_quarantine will delete for these paths and contents.
SELECT path, sha256 FROM quarantine
WHERE path IN (SELECT unnest($paths::VARCHAR[]))
   OR sha256 IN (SELECT unnest($shas::VARCHAR[]));

-- name: upsert_paths
-- The outcome of every path this run read (staged_paths registered by the caller).
INSERT OR REPLACE INTO ingest_paths
SELECT path, size_bytes, mtime_ns, inode, sha256, outcome, reason, ingest_run,
       now()::TIMESTAMP AS checked_at
FROM staged_paths;

-- name: insert_file
-- A committed Parquet file of a table.
INSERT INTO files (table_name, path, norder, npix, n_rows, n_bytes, ingest_run)
VALUES ($table_name, $path, $norder, $npix, $n_rows, $n_bytes, $run_id);

-- name: update_file_bytes
-- Size of a committed file after its schema was upgraded in place.
UPDATE files SET n_bytes = $n_bytes WHERE path = $path;
