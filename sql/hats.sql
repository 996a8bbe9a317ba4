-- Current rows of the catalogue views, in pixel order, for materialised HATS tables
-- (lamostdb.catalog.current_hats). One statement per table the views filter.

-- name: current_spectra
-- The spectra view (current versions, less withdrawn ones).
SELECT * FROM spectra ORDER BY _healpix_29, specid, source_sha256;

-- name: current_results
-- The results view (latest classify run of every current spectrum).
SELECT * FROM results ORDER BY _healpix_29, specid, source_sha256;

-- name: current_candidates
-- The candidates view (candidates of the runs the results view shows).
SELECT * FROM candidates ORDER BY _healpix_29, specid, source_sha256, rank;

-- name: current_xmatch
-- The xmatch view (latest cross-match run of every current spectrum).
SELECT * FROM xmatch ORDER BY _healpix_29, specid, source_sha256;

-- name: current_objects
-- The objects view (latest ids run of every current spectrum).
SELECT * FROM objects ORDER BY _healpix_29, specid, source_sha256;
