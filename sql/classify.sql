-- Statements of the classify stage.

-- name: unclassified
-- Current spectra without a result of this engine version, with the file that holds them.
WITH current_spectra AS (
    SELECT specid, source_sha256, filename
    FROM read_parquet($files, filename = true)
    SEMI JOIN spectra USING (specid, source_sha256)
),
done AS (
    SELECT specid, source_sha256 FROM results_history WHERE engine_version = $engine_version
)
SELECT filename, specid, source_sha256
FROM current_spectra
ANTI JOIN done USING (specid, source_sha256)
ORDER BY filename, specid;

-- name: all_current
-- Every current spectrum with the file that holds it (for --rerun).
SELECT filename, specid, source_sha256
FROM read_parquet($files, filename = true)
SEMI JOIN spectra USING (specid, source_sha256)
ORDER BY filename, specid;
