-- Views over the catalogue tables (contracts: schemas/<view>.json).
-- spectra_history is registered by the catalogue from its committed Parquet files.

-- name: view_spectra
-- Current version of every spectrum (superseded deliveries stay in spectra_history).
CREATE OR REPLACE TEMP VIEW spectra AS
WITH current_versions AS (
    SELECT specid, sha256 FROM spectrum_versions WHERE current
),
history AS (
    SELECT * FROM spectra_history
)
SELECT history.*
FROM history
SEMI JOIN current_versions
    ON history.specid = current_versions.specid
   AND history.source_sha256 = current_versions.sha256;
