-- Queries the Python API runs for users.

-- name: cone_source_view
-- Current spectra of the partitions overlapping a cone (cone_history: those files).
CREATE OR REPLACE TEMP VIEW cone_source AS
SELECT history.*
FROM cone_history AS history
SEMI JOIN spectra AS current_spectra
    ON history.specid = current_spectra.specid
   AND history.source_sha256 = current_spectra.source_sha256;

-- name: cone
-- Rows of `cone_source` within radius_deg of (ra_deg, dec_deg), nearest first.
WITH source AS (
    SELECT * FROM cone_source
),
separated AS (
    SELECT *, sep_arcsec($ra_deg, $dec_deg, ra, dec) AS sep_arcsec
    FROM source
)
SELECT * FROM separated
WHERE sep_arcsec <= $radius_arcsec
ORDER BY sep_arcsec;

-- name: spectrum_by_obsid
-- The current version of one spectrum by LAMOST obsid.
SELECT * FROM spectra WHERE obsid = $obsid;

-- name: spectrum_by_specid
-- The current version of one spectrum by its natural key.
SELECT * FROM spectra WHERE specid = $specid;
