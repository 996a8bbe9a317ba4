-- Views of the cross-match stage (contract: schemas/xmatch.json).
-- xmatch_history is registered by the catalogue from its committed Parquet files.

-- name: view_xmatch
-- Latest cross-match of every current spectrum (xmatch_history keeps every run and radius).
CREATE OR REPLACE TEMP VIEW xmatch AS
WITH current_spectra AS (
    SELECT specid, source_sha256 FROM spectra
),
ranked AS (
    SELECT
        history.*,
        row_number() OVER (PARTITION BY history.specid ORDER BY history.run_id DESC) AS run_rank
    FROM xmatch_history AS history
    SEMI JOIN current_spectra USING (specid, source_sha256)
)
SELECT * EXCLUDE (run_rank) FROM ranked WHERE run_rank = 1;
