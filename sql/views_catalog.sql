-- Catalogue views of the ids stage (contracts: schemas/objects.json, lrs.json, mec.json).
-- objects_history is registered by the catalogue from its committed Parquet files.
-- These views read spectra, results and objects only: the cross-match columns they show
-- were copied into objects by the ids run, so ids and counterparts always agree and the
-- views can be created before any cross-match exists.

-- name: macro_lamost_ra_cs
-- RA in whole centiseconds of time, truncated (as in LAMOST designations).
CREATE OR REPLACE TEMP MACRO lamost_ra_cs(ra_deg) AS
    CAST(floor((ra_deg - 360 * floor(ra_deg / 360)) * 24000 + 1e-7) AS BIGINT) % 8640000;

-- name: macro_lamost_dec_ds
-- |Dec| in whole deciarcseconds, truncated (as in LAMOST designations).
CREATE OR REPLACE TEMP MACRO lamost_dec_ds(dec_deg) AS
    CAST(floor(abs(dec_deg) * 36000 + 1e-7) AS BIGINT);

-- name: macro_lamost_designation
-- 'LAMOST Jhhmmss.ss+ddmmss.s' from (ra, dec); same as lamostdb.ids.designation.
CREATE OR REPLACE TEMP MACRO lamost_designation(ra_deg, dec_deg) AS
    'LAMOST J'
    || printf('%02d%02d%02d.%02d', lamost_ra_cs(ra_deg) // 360000,
              (lamost_ra_cs(ra_deg) // 6000) % 60, (lamost_ra_cs(ra_deg) % 6000) // 100,
              lamost_ra_cs(ra_deg) % 100)
    || CASE WHEN dec_deg < 0 THEN '-' ELSE '+' END
    || printf('%02d%02d%02d.%d', lamost_dec_ds(dec_deg) // 36000,
              (lamost_dec_ds(dec_deg) // 600) % 60, (lamost_dec_ds(dec_deg) % 600) // 10,
              lamost_dec_ds(dec_deg) % 10);

-- name: view_objects
-- Latest identifiers of every current spectrum (objects_history keeps every ids run).
CREATE OR REPLACE TEMP VIEW objects AS
SELECT * FROM latest_run_per_spectrum('objects_history');

-- name: view_lrs
-- LAMOST general catalogue: one row per current spectrum (class null before classify,
-- identifiers null before the ids stage).
CREATE OR REPLACE TEMP VIEW lrs AS
WITH source AS (
    SELECT specid, source_sha256, obsid, designation AS header_designation, obsdate, lmjd,
           mjd, planid, spid, fiberid, ra, dec, ra_obs, dec_obs,
           snru, snrg, snrr, snri, snrz, fibermask
    FROM spectra
),
fits AS (
    SELECT specid, source_sha256, class, subclass, z, z_err, rv_kms, rv_err_kms, rchi2, conf,
           zwarning
    FROM results
),
ids AS (
    SELECT * EXCLUDE (obsid, ra, dec, xmatch_run_id, run_id, _healpix_29) FROM objects
),
joined AS (
    SELECT *
    FROM source
    LEFT JOIN fits USING (specid, source_sha256)
    LEFT JOIN ids USING (specid, source_sha256)
)
SELECT
    specid, obsid, uid, lid, gp_id, gp_type,
    coalesce(nullif(trim(header_designation), ''), lamost_designation(ra, dec)) AS designation,
    obsdate, lmjd, mjd, planid, spid, fiberid, ra, dec, ra_obs, dec_obs, ura, udec,
    snru, snrg, snrr, snri, snrz,
    class, subclass, z, z_err, rv_kms, rv_err_kms, rchi2, conf, zwarning, fibermask,
    gaia_source_id, gaia_sep_arcsec, gaia_n_within, gaia_ambiguous,
    gaia_g_mag, gaia_bp_mag, gaia_rp_mag, gaia_parallax, gaia_pmra, gaia_pmdec,
    ps1_objid, ps1_sep_arcsec, ps1_n_within, ps1_ambiguous,
    ps1_g_mag, ps1_r_mag, ps1_i_mag, ps1_z_mag, ps1_y_mag,
    source_sha256
FROM joined;

-- name: view_mec
-- Multiple Epoch Catalog: one row per uid; epoch lists in (mjd, specid) order.
CREATE OR REPLACE TEMP VIEW mec AS
WITH source AS (
    SELECT * FROM lrs WHERE uid IS NOT NULL
),
epochs AS (
    SELECT
        uid,
        min(gp_id) AS gp_id,
        min(gp_type) AS gp_type,
        min(ura) AS ura,
        min(udec) AS udec,
        CAST(count(*) AS INTEGER) AS n_epochs,
        list(specid ORDER BY mjd NULLS LAST, specid) AS specids,
        list(obsid ORDER BY mjd NULLS LAST, specid) AS obsids,
        list(mjd ORDER BY mjd NULLS LAST, specid) AS mjds,
        list(class ORDER BY mjd NULLS LAST, specid) AS classes,
        list(z ORDER BY mjd NULLS LAST, specid) AS zs,
        min(mjd) AS first_mjd,
        max(mjd) AS last_mjd,
        CAST(count(class) AS INTEGER) AS n_classified,
        avg(rv_kms) AS rv_mean_kms,
        stddev_samp(rv_kms) AS rv_std_kms,
        CAST(count(rv_kms) AS INTEGER) AS n_rv,
        -- highest snrg first (null S/N last), then the smallest specid
        arg_min(struct_pack(specid, obsid, snrg),
                (coalesce(-snrg, CAST('inf' AS FLOAT)), specid)) AS best,
        -- the nearest counterpart over the epochs (one source for gaia objects)
        arg_min(struct_pack(gaia_source_id, gaia_g_mag, gaia_bp_mag, gaia_rp_mag,
                            gaia_parallax, gaia_pmra, gaia_pmdec),
                (gaia_sep_arcsec, gaia_source_id))
            FILTER (WHERE gaia_source_id IS NOT NULL) AS gaia,
        arg_min(struct_pack(ps1_objid, ps1_g_mag, ps1_r_mag, ps1_i_mag, ps1_z_mag, ps1_y_mag),
                (ps1_sep_arcsec, ps1_objid))
            FILTER (WHERE ps1_objid IS NOT NULL) AS ps1
    FROM source
    GROUP BY uid
),
votes AS (
    SELECT uid, class, count(*) AS n_votes, min(rchi2) AS best_rchi2, max(snrg) AS best_snrg
    FROM source
    WHERE class IS NOT NULL
    GROUP BY uid, class
),
consensus AS (
    SELECT uid, class, CAST(n_votes AS INTEGER) AS n_class_votes
    FROM votes
    QUALIFY row_number() OVER (PARTITION BY uid ORDER BY n_votes DESC, best_rchi2 ASC NULLS LAST,
                                                     best_snrg DESC NULLS LAST, class) = 1
)
SELECT
    epochs.uid, gp_id, gp_type, ura, udec, n_epochs, specids, obsids, mjds, classes, zs,
    first_mjd, last_mjd, n_classified, consensus.class, consensus.n_class_votes,
    rv_mean_kms, rv_std_kms, n_rv,
    best.specid AS best_specid, best.obsid AS best_obsid, best.snrg AS best_snrg,
    gaia.gaia_source_id, gaia.gaia_g_mag, gaia.gaia_bp_mag, gaia.gaia_rp_mag,
    gaia.gaia_parallax, gaia.gaia_pmra, gaia.gaia_pmdec,
    ps1.ps1_objid, ps1.ps1_g_mag, ps1.ps1_r_mag, ps1.ps1_i_mag, ps1.ps1_z_mag, ps1.ps1_y_mag
FROM epochs
LEFT JOIN consensus USING (uid);
