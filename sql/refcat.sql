-- Reference-catalogue ingest (gaia, ps1): ledger DDL and look-ups (contract: schemas/refcat_ledger.json).

-- name: create_refcat_ledger
-- One row per reference-catalogue file content ingested into one table.
CREATE TABLE IF NOT EXISTS refcat_ledger (
    sha256 VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    n_rows BIGINT NOT NULL,
    n_added BIGINT NOT NULL,
    n_dropped BIGINT NOT NULL,
    n_duplicates BIGINT NOT NULL,
    column_map VARCHAR NOT NULL,
    ingest_run VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    PRIMARY KEY (sha256, kind)
);

-- name: known_refcat_files
-- Which of the given file contents are already ingested into table $kind.
WITH wanted AS (SELECT unnest($shas::VARCHAR[]) AS sha256)
SELECT l.sha256
FROM refcat_ledger AS l
JOIN wanted USING (sha256)
WHERE l.kind = $kind;

-- name: stored_gaia_ids
-- Candidate source_ids (refcat_candidate_ids, registered by the caller) already in gaia.
WITH candidates AS (SELECT id FROM refcat_candidate_ids)
SELECT c.id
FROM candidates AS c
SEMI JOIN gaia AS g ON g.source_id = c.id;

-- name: stored_ps1_ids
-- Candidate objIDs (refcat_candidate_ids, registered by the caller) already in ps1.
WITH candidates AS (SELECT id FROM refcat_candidate_ids)
SELECT c.id
FROM candidates AS c
SEMI JOIN ps1 AS p ON p.objID = c.id;

-- name: insert_refcat_ledger_rows
-- Ledger rows of one refcat run (staged_refcat_ledger: an Arrow table registered by the caller).
INSERT INTO refcat_ledger
SELECT sha256, kind, path, size_bytes, n_rows, n_added, n_dropped, n_duplicates, column_map,
       ingest_run, now()::TIMESTAMP AS ingested_at
FROM staged_refcat_ledger;
