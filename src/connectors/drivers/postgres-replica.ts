// How far a PostgreSQL standby is behind its primary: one SQL expression, shared by the
// driver's probe (connection test, run reports) and the freshness check, so they agree.

/**
 * Seconds (float8); NULL on a primary, and on a standby that has replayed no transaction since
 * it started. now() - pg_last_xact_replay_timestamp() alone also grows while the primary is
 * simply idle, so a standby that has replayed all the WAL it received counts as caught up (0):
 * otherwise a primary that stopped writing would look like a lagging replica, and the stall
 * would be explained away instead of alerted. (A standby cut off from its primary receives
 * nothing and reads 0 too: its data then looks stale, which is the alert one wants.)
 */
export const REPLAY_LAG_SECONDS_SQL = `CASE WHEN pg_is_in_recovery() THEN
    CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
         ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
  END`;
