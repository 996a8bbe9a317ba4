-- Queries of the nightly command: what the catalogue holds for one night folder.
-- $prefix is the night folder's absolute path with a trailing '/' (ingest stores resolved paths).

-- name: night_classes
-- Current spectra of the night per class of their latest result (null: not classified).
WITH night AS (
    SELECT specid, source_sha256 FROM spectra WHERE starts_with(source_path, $prefix)
),
classified AS (
    SELECT night.specid, results.class
    FROM night
    LEFT JOIN results USING (specid, source_sha256)
)
SELECT class, count(*) AS n
FROM classified
GROUP BY class
ORDER BY class NULLS LAST;

-- name: night_quarantine
-- Files of the night that could not be ingested, with the reason: every path (identical
-- damaged files each), from ingest_paths; quarantine rows of catalogues older than it too.
SELECT path, reason FROM ingest_paths
WHERE outcome = 'quarantined' AND starts_with(path, $prefix)
UNION
SELECT path, reason FROM quarantine
WHERE starts_with(path, $prefix) AND path NOT IN (SELECT path FROM ingest_paths)
ORDER BY path;

-- name: night_progress
-- Current spectra of the night, and how many have a result, a cross-match and identifiers.
WITH night AS (
    SELECT specid, source_sha256 FROM spectra WHERE starts_with(source_path, $prefix)
)
SELECT
    (SELECT count(*) FROM night) AS n_spectra,
    (SELECT count(*) FROM night SEMI JOIN results USING (specid, source_sha256)) AS n_classified,
    (SELECT count(*) FROM night SEMI JOIN xmatch USING (specid, source_sha256)) AS n_matched,
    (SELECT count(*) FROM night SEMI JOIN objects USING (specid, source_sha256)) AS n_identified;
