-- Views of the cross-match stage (contract: schemas/xmatch.json).
-- xmatch_history is registered by the catalogue from its committed Parquet files.

-- name: view_xmatch
-- Latest cross-match of every current spectrum (xmatch_history keeps every run and radius).
CREATE OR REPLACE TEMP VIEW xmatch AS
SELECT * FROM latest_run_per_spectrum('xmatch_history');
