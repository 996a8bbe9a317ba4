-- Statements of the cross-match stage (lamostdb.xmatch). The pixel join itself (pairs within
-- a radius, with or without proper motion) is in sql/healpix.sql (lamostdb.healpix.join).

-- name: best
-- Nearest pair of every left row (xm_pairs), with the candidate count and the ambiguity flag.
WITH pairs AS (
    SELECT left_id, right_id, sep_arcsec, right_ra_obs, right_dec_obs FROM xm_pairs
),
ranked AS (
    SELECT *,
           row_number() OVER nearest AS rank,
           lead(sep_arcsec) OVER nearest AS next_sep_arcsec,
           count(*) OVER (PARTITION BY left_id) AS n_within
    FROM pairs
    WINDOW nearest AS (PARTITION BY left_id ORDER BY sep_arcsec, right_id)
)
SELECT left_id, right_id, sep_arcsec, right_ra_obs, right_dec_obs,
       n_within::INTEGER AS n_within,
       coalesce(next_sep_arcsec <= greatest($ambiguous_ratio * sep_arcsec,
                                            sep_arcsec + $ambiguous_delta_arcsec),
                false) AS ambiguous
FROM ranked
WHERE rank = 1;

-- name: todo
-- Current spectra to match (no xmatch row at this radius yet, or all with $rerun) and their epoch.
WITH current_spectra AS (
    SELECT specid, source_sha256, obsid, ra, dec, mjd, obsdate, _healpix_29 FROM spectra
),
done AS (
    SELECT specid, source_sha256
    FROM xmatch_history
    WHERE radius_arcsec = $radius_arcsec AND NOT $rerun
),
todo AS (
    SELECT * FROM current_spectra ANTI JOIN done USING (specid, source_sha256)
),
dated AS (
    -- DATE-OBS with a time is exact; else the middle of the MJD (at most 12 h off)
    SELECT *,
           CASE
               WHEN obsdate LIKE '____-__-__T%' AND try_cast(obsdate AS TIMESTAMP) IS NOT NULL
                   THEN julian(try_cast(obsdate AS TIMESTAMP)) - 2400001.0
               WHEN mjd IS NOT NULL THEN mjd + 0.5
               ELSE julian(try_cast(obsdate AS TIMESTAMP)) - 2400001.0 + 0.5
           END AS epoch_mjd
    FROM todo
)
SELECT specid, source_sha256, obsid, ra, dec, mjd, _healpix_29,
       2000.0 + (epoch_mjd - 51544.5) / 365.25 AS epoch_jyear
FROM dated
ORDER BY _healpix_29, specid;

-- name: gaia_source
-- Gaia rows (xm_ref_files) as the kernel's right side.
SELECT source_id AS id, ra, dec, pmra, pmdec, ref_epoch, _healpix_29
FROM xm_ref_files;

-- name: ps1_source
-- Pan-STARRS1 rows (xm_ref_files) as the kernel's right side.
SELECT objID AS id, raMean AS ra, decMean AS dec, _healpix_29
FROM xm_ref_files;

-- name: gaia_best
-- Columns of the best Gaia counterpart of each spectrum row (xm_best joined to xm_ref_files).
WITH best AS (
    SELECT * FROM xm_best
),
ref AS (
    SELECT source_id, ra, dec, pmra, pmdec, parallax,
           phot_g_mean_mag, phot_bp_mean_mag, phot_rp_mean_mag
    FROM xm_ref_files
    SEMI JOIN best ON xm_ref_files.source_id = best.right_id
)
SELECT best.left_id AS row,
       ref.source_id AS gaia_source_id,
       best.sep_arcsec AS gaia_sep_arcsec,
       best.n_within AS gaia_n_within,
       best.ambiguous AS gaia_ambiguous,
       ref.ra AS gaia_ra, ref.dec AS gaia_dec,
       best.right_ra_obs AS gaia_ra_obs_epoch, best.right_dec_obs AS gaia_dec_obs_epoch,
       ref.pmra AS gaia_pmra, ref.pmdec AS gaia_pmdec, ref.parallax AS gaia_parallax,
       ref.phot_g_mean_mag::DOUBLE AS gaia_g_mag,
       ref.phot_bp_mean_mag::DOUBLE AS gaia_bp_mag,
       ref.phot_rp_mean_mag::DOUBLE AS gaia_rp_mag
FROM best
JOIN ref ON ref.source_id = best.right_id;

-- name: ps1_best
-- Columns of the best Pan-STARRS1 counterpart of each spectrum row (xm_best joined to xm_ref_files).
WITH best AS (
    SELECT * FROM xm_best
),
ref AS (
    SELECT objID, raMean, decMean, gMeanPSFMag, rMeanPSFMag, iMeanPSFMag, zMeanPSFMag, yMeanPSFMag
    FROM xm_ref_files
    SEMI JOIN best ON xm_ref_files.objID = best.right_id
)
SELECT best.left_id AS row,
       ref.objID AS ps1_objid,
       best.sep_arcsec AS ps1_sep_arcsec,
       best.n_within AS ps1_n_within,
       best.ambiguous AS ps1_ambiguous,
       ref.raMean AS ps1_ra, ref.decMean AS ps1_dec,
       ref.gMeanPSFMag::DOUBLE AS ps1_g_mag, ref.rMeanPSFMag::DOUBLE AS ps1_r_mag,
       ref.iMeanPSFMag::DOUBLE AS ps1_i_mag, ref.zMeanPSFMag::DOUBLE AS ps1_z_mag,
       ref.yMeanPSFMag::DOUBLE AS ps1_y_mag
FROM best
JOIN ref ON ref.objID = best.right_id;

-- name: assemble
-- One xmatch row per spectrum row (xm_spectra) with its best Gaia (xm_gaia) and PS1 (xm_ps1) match.
WITH spectra_rows AS (
    SELECT * FROM xm_spectra
),
gaia AS (
    SELECT * FROM xm_gaia
),
ps1 AS (
    SELECT * FROM xm_ps1
)
SELECT s.specid, s.source_sha256, s.obsid, s.ra, s.dec, s.mjd,
       g.gaia_source_id, g.gaia_sep_arcsec,
       coalesce(g.gaia_n_within, 0)::INTEGER AS gaia_n_within,
       coalesce(g.gaia_ambiguous, false) AS gaia_ambiguous,
       g.gaia_ra, g.gaia_dec, g.gaia_ra_obs_epoch, g.gaia_dec_obs_epoch,
       g.gaia_pmra, g.gaia_pmdec, g.gaia_parallax, g.gaia_g_mag, g.gaia_bp_mag, g.gaia_rp_mag,
       p.ps1_objid, p.ps1_sep_arcsec,
       coalesce(p.ps1_n_within, 0)::INTEGER AS ps1_n_within,
       coalesce(p.ps1_ambiguous, false) AS ps1_ambiguous,
       p.ps1_ra, p.ps1_dec, p.ps1_g_mag, p.ps1_r_mag, p.ps1_i_mag, p.ps1_z_mag, p.ps1_y_mag,
       $radius_arcsec::DOUBLE AS radius_arcsec,
       $run_id::VARCHAR AS run_id,
       s._healpix_29
FROM spectra_rows AS s
LEFT JOIN gaia AS g ON g.row = s.row
LEFT JOIN ps1 AS p ON p.row = s.row
ORDER BY s._healpix_29, s.specid;
