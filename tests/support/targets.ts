// Real customer databases for connection tests: a fresh PostgreSQL database, a fresh MariaDB
// database with its own password-protected user, and a copy of Chinook under SQLITE_ROOT.

import { copyFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { createMariaDatabase, createPgDatabase, mariaAdmin, MARIADB, PG, uniqueName } from "./services.js";

export const CHINOOK_SQLITE = fileURLToPath(new URL("../../../shared/data/chinook/Chinook_Sqlite.sqlite", import.meta.url));

export type TargetDb = {
  dialect: "postgresql" | "mysql" | "sqlite";
  /** Body for POST /databases/add_db_connection. */
  body: Record<string, unknown>;
  password: string;
  drop(): Promise<void>;
};

export async function postgresTarget(): Promise<TargetDb> {
  const db = await createPgDatabase("pulse_target");
  await db.query("CREATE TABLE items (id int primary key, name text)");
  await db.query("INSERT INTO items VALUES (1, 'one'), (2, 'two')");
  // Trust authentication on this machine ignores the password; it is still sealed and stored.
  const password = uniqueName("pg_secret");
  return {
    dialect: "postgresql",
    body: { db_type: "postgresql", host: PG.host, port: PG.port, database_name: db.name, username: PG.user, db_password: password },
    password,
    drop: () => db.drop(),
  };
}

export async function mariaTarget(): Promise<TargetDb> {
  const db = await createMariaDatabase("pulse_target");
  const user = uniqueName("pulse_u").slice(0, 60);
  const password = uniqueName("maria_secret");
  await mariaAdmin(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
  await mariaAdmin(`CREATE USER '${user}'@'localhost' IDENTIFIED BY '${password}'`);
  await mariaAdmin(`GRANT SELECT ON \`${db.name}\`.* TO '${user}'@'%'`);
  await mariaAdmin(`GRANT SELECT ON \`${db.name}\`.* TO '${user}'@'localhost'`);
  await db.query("CREATE TABLE items (id int primary key, name text)");
  await db.query("INSERT INTO items VALUES (1, 'one'), (2, 'two')");
  return {
    dialect: "mysql",
    body: { db_type: "mysql", host: MARIADB.host, port: MARIADB.port, database_name: db.name, username: user, db_password: password },
    password,
    async drop() {
      await mariaAdmin(`DROP USER IF EXISTS '${user}'@'%'`);
      await mariaAdmin(`DROP USER IF EXISTS '${user}'@'localhost'`);
      await db.drop();
    },
  };
}

export async function sqliteTarget(sqliteRoot: string): Promise<TargetDb> {
  const name = `${uniqueName("chinook")}.sqlite`;
  copyFileSync(CHINOOK_SQLITE, path.join(sqliteRoot, name));
  return { dialect: "sqlite", body: { db_type: "sqlite", database_name: name }, password: "", drop: async () => {} };
}
