-- Statements of the export stage (lamostdb export): a data release of the catalogue.
-- The release is a selection of current LAMOST spectra, materialised once as the temp
-- table export_selection (with each spectrum's classification and UID, both light), so
-- that the streaming query of the pixel data joins against a small table built in memory
-- and the spectra themselves only ever flow through, one batch at a time.

-- name: create_selection
-- The release's spectra with their result (a struct of the results row) and UID.
-- {{where}} is the user's --where fragment (trusted SQL over lrs columns) or TRUE.
CREATE OR REPLACE TEMP TABLE export_selection AS
WITH lamost AS (
    SELECT specid, source_sha256 FROM spectra WHERE survey = 'LAMOST'
),
filtered AS (
    SELECT specid, source_sha256 FROM lrs WHERE ({{where}})
),
selected AS (
    SELECT specid, source_sha256 FROM filtered SEMI JOIN lamost USING (specid, source_sha256)
),
fits AS (
    SELECT * EXCLUDE (coeffs) FROM results
),
ids AS (
    SELECT specid, source_sha256, uid FROM objects
)
SELECT
    selected.specid,
    selected.source_sha256,
    -- a table alias read as a column is a struct of its row; an unmatched row of a LEFT
    -- JOIN gives a struct of nulls, not NULL, hence the CASE
    CASE WHEN fits.run_id IS NULL THEN NULL ELSE fits END AS result,
    ids.uid
FROM selected
LEFT JOIN fits USING (specid, source_sha256)
LEFT JOIN ids USING (specid, source_sha256);

-- name: selection_summary
-- What the release holds and what it lacks (spectra without a result or a UID).
SELECT
    count(*) AS n_selected,
    count(*) FILTER (WHERE result IS NULL) AS n_unclassified,
    min(specid) FILTER (WHERE result IS NULL) AS first_unclassified,
    count(*) FILTER (WHERE uid IS NULL) AS n_without_uid,
    min(specid) FILTER (WHERE uid IS NULL) AS first_without_uid,
    (SELECT count(*) FROM results) AS n_results,
    (SELECT count(*) FROM objects) AS n_objects
FROM export_selection;

-- name: engine_versions
-- Classification engine versions behind the release's results.
SELECT DISTINCT result.engine_version AS engine_version
FROM export_selection
WHERE result IS NOT NULL
ORDER BY engine_version;

-- name: lrs_rows
-- General catalogue rows of the release, in specid order.
SELECT lrs.*
FROM lrs
SEMI JOIN export_selection USING (specid, source_sha256)
ORDER BY specid;

-- name: mec_rows
-- Multiple Epoch Catalog rows of the objects with a spectrum in the release (all their
-- epochs in the catalogue), in uid order.
WITH release_objects AS (
    SELECT DISTINCT uid FROM export_selection WHERE uid IS NOT NULL
)
SELECT mec.*
FROM mec
SEMI JOIN release_objects USING (uid)
ORDER BY uid;

-- name: spectrum_rows
-- Every stored column of the release's spectra with their result and UID; no ORDER BY,
-- so DuckDB streams the Parquet scan instead of sorting the pixel arrays.
WITH source AS (
    SELECT * FROM spectra
),
selected AS (
    SELECT specid, source_sha256, result, uid FROM export_selection
)
SELECT source.*, selected.result, selected.uid
FROM source
JOIN selected USING (specid, source_sha256);

-- name: selection_pixels
-- The selection with each spectrum's order-29 pixel: which partition's files hold its row.
WITH selected AS (
    SELECT specid, source_sha256, result, uid FROM export_selection
),
pixels AS (
    SELECT specid, source_sha256, _healpix_29 FROM spectra
)
SELECT selected.specid, selected.source_sha256, selected.result, selected.uid,
       pixels._healpix_29
FROM selected
JOIN pixels USING (specid, source_sha256)
ORDER BY pixels._healpix_29, selected.specid;

-- name: drop_selection
-- Forget the selection once the release is written.
DROP TABLE IF EXISTS export_selection;

-- name: keep_join_order
-- Join as written in spectrum_rows: build the hash table on the selection (right side).
-- DuckDB estimates a Parquet scan behind the spectra view at ~1/50 of its rows and would
-- otherwise build on the pixel arrays, holding the whole release in memory.
SET disabled_optimizers = 'join_order,build_side_probe_side';

-- name: reset_join_order
-- Give the optimizer back its defaults after the spectrum stream.
RESET disabled_optimizers;
