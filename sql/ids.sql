-- Statements of the ids stage (lamostdb/ids): inputs and aliases (the friends-of-friends pairs
-- come from the pixel join of sql/healpix.sql).

-- name: relation_exists
-- Whether a table or view of this name is visible to the connection.
SELECT count(*) > 0 AS found
FROM (SELECT table_name AS name FROM duckdb_tables()
      UNION ALL SELECT view_name FROM duckdb_views())
WHERE name = $name;

-- name: current_xmatch
-- The cross-match row of every current spectrum (input of the ids stage).
SELECT xmatch.*
FROM xmatch
SEMI JOIN spectra USING (specid, source_sha256)
ORDER BY specid;

-- name: previous_objects
-- Identifiers now shown by the objects view (to find what changed and record aliases).
SELECT * FROM objects ORDER BY specid;

-- name: create_uid_aliases
-- Old UIDs kept as aliases of the UID that replaced them (contract schemas/uid_aliases.json).
CREATE TABLE IF NOT EXISTS uid_aliases (
    old_uid BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    run_id VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    PRIMARY KEY (old_uid, uid, run_id)
);

-- name: insert_uid_aliases
-- Record the aliases of one ids run (rows staged in the registered ids_new_aliases).
INSERT INTO uid_aliases (old_uid, uid, run_id, reason)
SELECT old_uid, uid, run_id, reason FROM ids_new_aliases;

-- name: resolve_uid
-- The current UID(s) of a UID that may be an old alias: follows alias chains to the end.
WITH RECURSIVE chain(uid, depth) AS (
    SELECT CAST($uid AS BIGINT), 0
    UNION
    SELECT a.uid, chain.depth + 1
    FROM chain JOIN uid_aliases AS a ON a.old_uid = chain.uid
    WHERE chain.depth < 64
),
current_uids AS (
    SELECT DISTINCT uid FROM objects
)
SELECT DISTINCT chain.uid
FROM chain SEMI JOIN current_uids USING (uid)
ORDER BY chain.uid;
