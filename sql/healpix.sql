-- Sky geometry in SQL (lamostdb.healpix): the macros every connection gets, and the pixel
-- join. The join registers its inputs as xm_left (row, ra, dec[, epoch_jyear]), xm_block
-- (row, k, pix: each left row's 3x3 pixel block at match order k) and xm_right (id, ra, dec,
-- _healpix_29[, pmra, pmdec, ref_epoch]).

-- name: macro_sep_arcsec
-- Angular separation in arcsec of (ra1, dec1) and (ra2, dec2) in degrees: haversine (no cancellation at small separations, periodic in RA, finite at the poles).
CREATE OR REPLACE TEMP MACRO sep_arcsec(ra1, dec1, ra2, dec2) AS
    degrees(2 * asin(sqrt(least(
        pow(sin(radians(dec2 - dec1) / 2), 2)
        + cos(radians(dec1)) * cos(radians(dec2)) * pow(sin(radians(ra2 - ra1) / 2), 2),
        1.0)))) * 3600;

-- name: macro_pixel_at_order
-- The nested pixel at order k holding an order-29 pixel (lamostdb.healpix.pixel_at_order).
CREATE OR REPLACE TEMP MACRO pixel_at_order(hp29, k) AS hp29 >> (2 * (29 - k));

-- name: pairs
-- Pairs within the radius at fixed positions: pixel join on the left 3x3 blocks, then the separation.
WITH block AS (
    SELECT row AS left_row, pix FROM xm_block
),
right_pixels AS (
    SELECT id AS right_id, ra AS right_ra, dec AS right_dec,
           pixel_at_order(_healpix_29, $order) AS pix
    FROM xm_right
),
candidates AS (
    SELECT block.left_row, right_pixels.right_id, right_pixels.right_ra, right_pixels.right_dec
    FROM block
    JOIN right_pixels USING (pix)
),
measured AS (
    SELECT c.left_row, c.right_id, c.right_ra, c.right_dec,
           sep_arcsec(l.ra, l.dec, c.right_ra, c.right_dec) AS sep_arcsec
    FROM candidates AS c
    JOIN xm_left AS l ON l.row = c.left_row
)
SELECT left_row, right_id, sep_arcsec,
       right_ra AS right_ra_obs, right_dec AS right_dec_obs
FROM measured
WHERE sep_arcsec <= $radius_arcsec;

-- name: pm_extent
-- Largest total proper motion (mas/yr) and the range of reference epochs of xm_right.
SELECT coalesce(max(sqrt(pmra * pmra + pmdec * pmdec)), 0.0) AS pm_max_mas_yr,
       min(ref_epoch) AS ref_epoch_min,
       max(ref_epoch) AS ref_epoch_max
FROM xm_right;

-- name: pairs_pm
-- Pairs within the radius after moving each right row to the left row's epoch with its proper motion.
WITH block AS (
    SELECT row AS left_row, k, pix FROM xm_block
),
right_rows AS (
    SELECT id AS right_id, ra, dec, _healpix_29,
           coalesce(pmra, 0.0) AS pmra, coalesce(pmdec, 0.0) AS pmdec, ref_epoch,
           -- farthest the source can move between its epoch and any left epoch (arcsec)
           coalesce(sqrt(pmra * pmra + pmdec * pmdec) / 1000.0
                    * greatest(abs($epoch_max - ref_epoch), abs($epoch_min - ref_epoch)),
                    0.0) AS margin_arcsec
    FROM xm_right
),
right_orders AS (
    -- the same rule as lamostdb.healpix.blocks.match_order, for radius + margin
    SELECT *,
           greatest($k_min, least($k_base, floor(log2(
               $res0_arcsec / ($pixel_margin * ($radius_arcsec + margin_arcsec))))))::INTEGER AS k
    FROM right_rows
),
right_pixels AS (
    SELECT *, pixel_at_order(_healpix_29, k) AS pix FROM right_orders
),
candidates AS (
    SELECT block.left_row, r.right_id, r.ra, r.dec, r.pmra, r.pmdec, r.ref_epoch
    FROM block
    JOIN right_pixels AS r USING (k, pix)
),
offsets AS (
    -- proper motion in radians east/north over the epoch difference (no epoch: no motion)
    SELECT c.left_row, c.right_id, l.ra AS left_ra, l.dec AS left_dec,
           radians(c.ra) AS a, radians(c.dec) AS d,
           radians(c.pmra / 3.6e6) * coalesce(l.epoch_jyear - c.ref_epoch, 0.0) AS east,
           radians(c.pmdec / 3.6e6) * coalesce(l.epoch_jyear - c.ref_epoch, 0.0) AS north
    FROM candidates AS c
    JOIN xm_left AS l ON l.row = c.left_row
),
moved AS (
    -- step along the local east/north unit vectors, then back to the sphere: no 1/cos(dec)
    SELECT left_row, right_id, left_ra, left_dec,
           cos(d) * cos(a) - east * sin(a) - north * sin(d) * cos(a) AS x,
           cos(d) * sin(a) + east * cos(a) - north * sin(d) * sin(a) AS y,
           sin(d) + north * cos(d) AS z
    FROM offsets
),
observed AS (
    SELECT left_row, right_id, left_ra, left_dec,
           (degrees(atan2(y, x)) + 360.0) % 360.0 AS ra_obs,
           degrees(atan2(z, sqrt(x * x + y * y))) AS dec_obs
    FROM moved
),
measured AS (
    SELECT *, sep_arcsec(left_ra, left_dec, ra_obs, dec_obs) AS sep_arcsec
    FROM observed
)
SELECT left_row, right_id, sep_arcsec,
       ra_obs AS right_ra_obs, dec_obs AS right_dec_obs
FROM measured
WHERE sep_arcsec <= $radius_arcsec;
