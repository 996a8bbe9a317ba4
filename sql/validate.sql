-- Inputs of `lamostdb validate` (lamostdb/validate/truth.py): our classification of every
-- current spectrum, and the LAMOST pipeline's own labels as one possible truth.

-- name: results_for_validation
-- Every column of the results view (optional ones such as conf appear once they exist).
SELECT * EXCLUDE (coeffs) FROM results ORDER BY specid;

-- name: lamost_labels
-- LAMOST pipeline labels of every current spectrum; null or unknown classes become UNKNOWN.
WITH source AS (
    SELECT specid, lasp_class, lasp_subclass, lasp_z FROM spectra
),
cleaned AS (
    SELECT
        specid,
        upper(trim(lasp_class)) AS lasp_class,
        nullif(trim(lasp_subclass), '') AS lasp_subclass,
        -- z <= -1 is unphysical: LAMOST writes -9999 for "no redshift"
        CASE WHEN lasp_z > -1 THEN lasp_z END AS lasp_z
    FROM source
)
SELECT
    specid,
    CASE WHEN lasp_class IN ('STAR', 'GALAXY', 'QSO') THEN lasp_class ELSE 'UNKNOWN' END
        AS true_class,
    lasp_subclass AS true_subclass,
    lasp_z AS true_z
FROM cleaned
ORDER BY specid;
