-- Statements of `lamostdb withdraw`: taking stored spectra out of the catalogue, audited.

-- name: create_withdrawn
-- One row per withdrawn spectrum version: what, why, by whom and in which run.
CREATE TABLE IF NOT EXISTS withdrawn (
    specid VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    obsid BIGINT,
    reason VARCHAR NOT NULL,
    withdrawn_by VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    withdrawn_at TIMESTAMP NOT NULL,
    PRIMARY KEY (specid, sha256)
);

-- name: current_versions_of
-- The current version of each of the given specids, whether it is withdrawn already, and
-- its obsid from the ledger.
WITH wanted AS (SELECT unnest($specids::VARCHAR[]) AS specid)
SELECT v.specid, v.sha256, v.version, l.obsid, w.run_id AS withdrawn_run
FROM spectrum_versions AS v
JOIN wanted USING (specid)
LEFT JOIN ingest_ledger AS l ON l.sha256 = v.sha256
LEFT JOIN withdrawn AS w ON w.specid = v.specid AND w.sha256 = v.sha256
WHERE v.current
ORDER BY v.specid;

-- name: insert_withdrawn
-- The withdrawals of one run (staged_withdrawn: an Arrow table registered by the caller).
INSERT INTO withdrawn
SELECT specid, sha256, version, obsid, reason, withdrawn_by, run_id,
       now()::TIMESTAMP AS withdrawn_at
FROM staged_withdrawn;

-- name: withdrawn_contents
-- Which of the given contents are withdrawn, with when and why (ingest reports them).
WITH wanted AS (SELECT unnest($shas::VARCHAR[]) AS sha256)
SELECT w.sha256, w.specid, w.run_id, w.reason
FROM withdrawn AS w
JOIN wanted USING (sha256);

-- name: withdrawn_exists
-- One row when the catalogue has the withdrawn table (catalogues of older versions lack it).
SELECT 1 FROM duckdb_tables() WHERE table_name = 'withdrawn' AND NOT temporary;
