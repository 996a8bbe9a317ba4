-- Statements of `lamostdb plot` (lamostdb.plot).

-- name: specids_by_obsid
-- Keys of the current spectra with one obsid (several when an obsid is shared).
SELECT specid FROM spectra WHERE obsid = $obsid ORDER BY specid;

-- name: result_of_spectrum
-- The catalogue's result (latest classify run) for one version of one spectrum.
SELECT * FROM results WHERE specid = $specid AND source_sha256 = $source_sha256;
