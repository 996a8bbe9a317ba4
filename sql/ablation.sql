-- Statements of lamostdb.validate.ablation.

-- name: spectra_for_ablation
-- The engine's columns of the given current spectra (the validation sample).
SELECT COLUMNS(lambda c: list_contains($columns, c))
FROM spectra
WHERE list_contains($specids, specid)
ORDER BY specid;
