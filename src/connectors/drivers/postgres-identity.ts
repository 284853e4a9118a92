// Which database a PostgreSQL session is in, as the server itself says: the cluster's system
// identifier (the same through any alias, DNS name or port-forward) and the database's oid.

/** `systemIdentifier` is null where the role may not call pg_control_system() (it can be
 * revoked); the server's start time then tells clusters apart. */
export interface PostgresIdentity {
  systemIdentifier: string | null;
  startedAt: string;
  databaseOid: string;
}

/** Runs one statement of ours and gives its rows. */
export type RunSql = (sql: string) => Promise<Record<string, unknown>[]>;

// Schema-qualified: a search_path or a same-named function of the role's cannot answer for them.
const DATABASE_AND_START = `extract(epoch FROM pg_catalog.pg_postmaster_start_time())::text AS started_at,
       (SELECT oid::text FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) AS database_oid`;
const WITH_SYSTEM_IDENTIFIER = `SELECT (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) AS system_identifier, ${DATABASE_AND_START}`;
const WITHOUT_SYSTEM_IDENTIFIER = `SELECT NULL AS system_identifier, ${DATABASE_AND_START}`;

const INSUFFICIENT_PRIVILEGE = "42501";

export async function postgresIdentity(run: RunSql): Promise<PostgresIdentity> {
  let rows: Record<string, unknown>[];
  try {
    rows = await run(WITH_SYSTEM_IDENTIFIER);
  } catch (err) {
    // Privileges are checked for the whole statement, even a branch never taken: a second one.
    if ((err as { code?: unknown }).code !== INSUFFICIENT_PRIVILEGE) throw err;
    rows = await run(WITHOUT_SYSTEM_IDENTIFIER);
  }
  const row = rows[0] ?? {};
  return {
    systemIdentifier: row.system_identifier == null ? null : String(row.system_identifier),
    startedAt: String(row.started_at),
    databaseOid: String(row.database_oid),
  };
}
