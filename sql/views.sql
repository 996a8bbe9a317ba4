-- Views over the catalogue tables (contracts: schemas/<view>.json).
-- spectra_history is registered by the catalogue from its committed Parquet files.

-- name: macro_latest_run_per_spectrum
-- Rows of a stage's history table from its latest run, for current spectra only
-- (used by the results, xmatch and objects views; run ids sort in start order).
CREATE OR REPLACE TEMP MACRO latest_run_per_spectrum(history_table) AS TABLE
WITH current_spectra AS (
    SELECT specid, source_sha256 FROM spectra
),
ranked AS (
    SELECT
        history.*,
        row_number() OVER (PARTITION BY history.specid ORDER BY history.run_id DESC) AS run_rank
    FROM query_table(history_table) AS history
    SEMI JOIN current_spectra USING (specid, source_sha256)
)
SELECT * EXCLUDE (run_rank) FROM ranked WHERE run_rank = 1;

-- name: view_spectra
-- Current version of every spectrum (superseded deliveries stay in spectra_history), less
-- withdrawn ones (`lamostdb withdraw`); every stage and view reads spectra through this.
CREATE OR REPLACE TEMP VIEW spectra AS
WITH current_versions AS (
    SELECT specid, sha256 FROM spectrum_versions WHERE current
    EXCEPT
    SELECT specid, sha256 FROM withdrawn
),
history AS (
    SELECT * FROM spectra_history
)
SELECT history.*
FROM history
SEMI JOIN current_versions
    ON history.specid = current_versions.specid
   AND history.source_sha256 = current_versions.sha256;

-- name: view_results
-- Latest classification of every current spectrum (results_history keeps every run).
CREATE OR REPLACE TEMP VIEW results AS
SELECT * FROM latest_run_per_spectrum('results_history');

-- name: view_candidates
-- Candidates of the runs the results view shows.
CREATE OR REPLACE TEMP VIEW candidates AS
SELECT history.*
FROM candidates_history AS history
SEMI JOIN results USING (specid, run_id);
