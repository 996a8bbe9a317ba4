-- Statements of the ids stage (lamostdb/ids): friends-of-friends pairs, inputs, aliases.

-- name: fof_pairs
-- Pairs (i < j) of ids_points within $radius_arcsec: same or neighbouring pixel, then haversine.
WITH source AS (
    SELECT idx, ra, dec, pix FROM ids_points
),
candidates AS (
    SELECT a.idx AS i, b.idx AS j,
           radians(a.dec) AS dec1, radians(b.dec) AS dec2,
           radians(b.dec - a.dec) AS ddec, radians(b.ra - a.ra) AS dra
    FROM source AS a
    JOIN ids_neighbours AS n ON n.pix = a.pix
    JOIN source AS b ON b.pix = n.nb AND b.idx > a.idx
),
separated AS (
    SELECT i, j,
           degrees(2 * asin(sqrt(least(1.0, pow(sin(ddec / 2), 2)
               + cos(dec1) * cos(dec2) * pow(sin(dra / 2), 2))))) * 3600 AS sep_arcsec
    FROM candidates
)
SELECT i, j FROM separated WHERE sep_arcsec <= $radius_arcsec ORDER BY i, j;

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
