-- Statements of `lamostdb templates build` (stacking labelled spectra into star templates).
-- {{label}} and {{z}} are column names of spectra from the allow-lists in
-- lamostdb/catalog/templates_build.py (LABEL_COLUMNS, Z_COLUMNS), quoted; values are bound.

-- name: label_counts
-- Current spectra per label: all, and those with snrg >= $min_snr.
WITH source AS (
    SELECT {{label}} AS label, snrg FROM spectra
)
SELECT label,
       count(*) AS n_all,
       count(*) FILTER (WHERE snrg >= $min_snr) AS n_snr
FROM source
GROUP BY label
ORDER BY label NULLS FIRST;

-- name: labelled_spectra
-- The spectra of the given labels with snrg >= $min_snr, the $max_per_label highest-S/N per
-- label, ordered by label so that each label's spectra arrive together.
WITH source AS (
    SELECT specid, coeff0, coeff1, npix, wavelength, flux, ivar, andmask, snrg,
           {{label}} AS label, {{z}} AS z
    FROM spectra
),
selected AS (
    SELECT * FROM source
    WHERE list_contains($labels, label) AND snrg >= $min_snr
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY label ORDER BY snrg DESC, specid) AS snr_rank
    FROM selected
)
SELECT specid, coeff0, coeff1, npix, wavelength, flux, ivar, andmask, snrg, label, z
FROM ranked
WHERE snr_rank <= $max_per_label
ORDER BY label, specid;
