// The metadata store behaves the same on embedded PGlite and on PostgreSQL: migrations apply
// (repeatedly and concurrently), constraints hold, and repositories scope by owner.

import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { openStore, type Store } from "../../src/store/client.js";
import { deleteConnection, getConnection, insertConnection, listConnections, updateConnection } from "../../src/store/connections.js";
import { findUserByEmail, insertUser } from "../../src/store/users.js";
import { createPgDatabase, uniqueName } from "../support/services.js";

type Made = { store: Store; cleanup: () => Promise<void> };

const kinds: [string, () => Promise<Made>][] = [
  [
    "pglite",
    async () => {
      const store = await openStore({ pgliteDir: null });
      return { store, cleanup: () => store.close() };
    },
  ],
  [
    "postgresql",
    async () => {
      const db = await createPgDatabase("pulse_store");
      const store = await openStore({ databaseUrl: db.url });
      return {
        store,
        cleanup: async () => {
          await store.close();
          await db.drop();
        },
      };
    },
  ],
];

describe.each(kinds)("metadata store contract: %s", (kind, make) => {
  let made: Made;
  beforeAll(async () => {
    made = await make();
    await made.store.migrate();
  });
  afterAll(async () => made?.cleanup());

  it("reports its kind and answers a ping", async () => {
    expect(made.store.kind).toBe(kind);
    await expect(made.store.ping()).resolves.toBeUndefined();
  });

  it("applies migrations idempotently, also when two instances race", async () => {
    await Promise.all([made.store.migrate(), made.store.migrate()]);
    await made.store.migrate();
  });

  it("refuses a store a newer Pulse migrated, naming the setting of its kind", async () => {
    const setting = kind === "pglite" ? "DATA_DIR" : "DATABASE_URL";
    await made.store.db.execute(sql`INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('from-a-newer-pulse', 9999999999999)`);
    try {
      await expect(made.store.migrate()).rejects.toThrow(new RegExp(`^${setting}: the store's schema is newer than this Pulse \\(\\d+ migrations applied, this build knows \\d+\\)`));
    } finally {
      await made.store.db.execute(sql`DELETE FROM drizzle.__drizzle_migrations WHERE hash = 'from-a-newer-pulse'`);
    }
    expect(await made.store.migrate()).toMatchObject({ applied: 0 });
  });

  it("keeps emails unique case-insensitively", async () => {
    const email = `${uniqueName("u")}@Example.com`;
    const first = await insertUser(made.store.db, { name: "A", email, passwordHash: "h" });
    expect(first?.email).toBe(email.toLowerCase());
    expect(await insertUser(made.store.db, { name: "B", email: email.toUpperCase(), passwordHash: "h" })).toBeNull();
    expect((await findUserByEmail(made.store.db, email.toUpperCase()))?.id).toBe(first!.id);
  });

  it("scopes every connection read and write by owner", async () => {
    const a = (await insertUser(made.store.db, { name: "A", email: `${uniqueName("a")}@x.io`, passwordHash: "h" }))!;
    const b = (await insertUser(made.store.db, { name: "B", email: `${uniqueName("b")}@x.io`, passwordHash: "h" }))!;
    const newConnection = () =>
      insertConnection(made.store.db, { ownerId: a.id, name: "n", dbType: "postgresql", host: "h", port: 5432, databaseName: "d", username: "u", passwordSealed: "v1:x", ssl: false });
    const conn = await newConnection();
    expect(await getConnection(made.store.db, b.id, conn.id)).toBeNull();
    expect(await updateConnection(made.store.db, b.id, conn.id, { name: "stolen" }, conn.updatedAt)).toBeNull();
    expect(await deleteConnection(made.store.db, b.id, conn.id)).toBe(false);
    expect(await listConnections(made.store.db, b.id)).toEqual([]);
    const updated = await updateConnection(made.store.db, a.id, conn.id, { name: "renamed" }, conn.updatedAt);
    expect(updated).toMatchObject({ name: "renamed" });
    expect((updated as typeof conn).updatedAt.getTime()).toBeGreaterThan(conn.updatedAt.getTime());
    // Made from the row as it was before another change, however soon after it (within the same
    // millisecond, on PGlite often): it would undo that one.
    for (let i = 0; i < 50; i++) {
      const read = await newConnection();
      expect(await updateConnection(made.store.db, a.id, read.id, { databaseName: "moved" }, read.updatedAt)).toMatchObject({ databaseName: "moved" });
      expect(await updateConnection(made.store.db, a.id, read.id, { username: "stale" }, read.updatedAt)).toBe("changed");
      await deleteConnection(made.store.db, a.id, read.id);
    }
    expect(await deleteConnection(made.store.db, a.id, conn.id)).toBe(true);
  });
});
