// The metadata store taking a batch of audit records while its answer is lost on the way back
// (red-team pass): the batch was written again once the store answered, so the trail showed
// those statements twice. A batch whose write failed otherwise than on its data is now looked up
// (its writer's last committed batch, recorded in the batch's own transaction) before its
// records are written again.

import { Writable } from "node:stream";

import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createAuditTrail, type AuditTrail } from "../../src/audit/trail.js";
import { createLogger } from "../../src/logger.js";
import { pruneAuditRecords } from "../../src/store/audit.js";
import { openStore, type Store } from "../../src/store/client.js";
import { rowsOf } from "../../src/store/rows.js";
import { createPgDatabase, PG } from "../support/services.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

let database: Awaited<ReturnType<typeof createPgDatabase>>;
let direct: Store;
let relay: TcpRelay;
let relayed: Store;
let trail: AuditTrail;
const quiet = createLogger("error", new Writable({ write: (_chunk, _enc, done) => done() }));

beforeAll(async () => {
  database = await createPgDatabase("pulse_audit_reply");
  direct = await openStore({ databaseUrl: database.url });
  await direct.migrate();
  relay = await startTcpRelay({ host: PG.host, port: PG.port });
  relayed = await openStore({ databaseUrl: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${database.name}`, queryTimeoutMs: 500 });
  trail = createAuditTrail(relayed, { enabled: true, retentionDays: 30, bufferRecords: 1_000 }, quiet);
});
afterAll(async () => {
  await trail?.close();
  await relayed?.close();
  await relay?.close();
  await direct?.close();
  await database?.drop();
});

const recordsOf = async (connectionId: number) =>
  rowsOf<{ n: number }>(await direct.db.execute(sql`SELECT count(*)::int AS n FROM audit_records WHERE connection_id = ${connectionId}`))[0]!.n;

const record = (connectionId: number, n: number) => {
  for (let i = 0; i < n; i++) {
    trail.record({ connectionId, ownerId: 1, source: "query", apiKeyId: null, sql: `SELECT ${i}`, startedAt: Date.now(), durationMs: 1, rowCount: 1 });
  }
};

/** From now on, the first batch's commit in `store` takes seconds on the server (as a stalled disk
 * would make it), long past the writer's wait: its answer is lost while it is still committing.
 * A batch is known by its mark (a writer's registration marks none). */
async function slowFirstBatchCommit(store: Store) {
  await store.db.execute(
    sql.raw(`
      CREATE SEQUENCE slow_commits;
      CREATE FUNCTION slow_first_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.batch <> '00000000-0000-0000-0000-000000000000' AND nextval('slow_commits') = 1 THEN
          BEGIN PERFORM pg_sleep(3); EXCEPTION WHEN query_canceled THEN PERFORM pg_sleep(3); END;
        END IF;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER slow_first_commit AFTER INSERT OR UPDATE ON audit_writes DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION slow_first_commit();`),
  );
}

describe("an audit batch whose write fails", () => {
  it("is not written twice when the store took it but its answer was lost", async () => {
    record(101, 3);
    relay.freezeAfter("COMMIT");
    expect(await trail.flush()).toBe(false);
    relay.freezeAfter(null);
    expect(await trail.flush()).toBe(true);
    expect(trail.pending).toBe(0);
    expect(await recordsOf(101)).toBe(3);
  });

  it("is written once the store answers when it never reached it", async () => {
    record(102, 3);
    relay.freezeOn("COMMIT");
    expect(await trail.flush()).toBe(false);
    relay.freezeOn(null);
    expect(await trail.flush()).toBe(true);
    expect(trail.pending).toBe(0);
    expect(await recordsOf(102)).toBe(3);
  });
});

describe("an audit batch whose commit outlives the writer's wait for it", () => {
  let slow: Awaited<ReturnType<typeof createPgDatabase>>;
  let slowDirect: Store;
  let slowStore: Store;
  let slowTrail: AuditTrail;

  beforeAll(async () => {
    slow = await createPgDatabase("pulse_audit_slow_commit");
    slowDirect = await openStore({ databaseUrl: slow.url });
    await slowDirect.migrate();
    await slowFirstBatchCommit(slowDirect);
    slowStore = await openStore({ databaseUrl: slow.url, queryTimeoutMs: 500 });
    slowTrail = createAuditTrail(slowStore, { enabled: true, retentionDays: 30, bufferRecords: 1_000 }, quiet);
  });
  afterAll(async () => {
    await slowTrail?.close();
    await slowStore?.close();
    await slowDirect?.close();
    await slow?.drop();
  });

  it("waits to learn whether it committed instead of writing its records again meanwhile", async () => {
    for (let i = 0; i < 3; i++) slowTrail.record({ connectionId: 103, ownerId: 1, source: "query", apiKeyId: null, sql: `SELECT ${i}`, startedAt: Date.now(), durationMs: 1, rowCount: 1 });
    expect(await slowTrail.flush()).toBe(false);
    // Until the commit is done, its outcome is unknown: the records wait.
    await slowTrail.flush();
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    expect(await slowTrail.flush()).toBe(true);
    expect(slowTrail.pending).toBe(0);
    const [row] = rowsOf<{ n: number }>(await slowDirect.db.execute(sql`SELECT count(*)::int AS n FROM audit_records WHERE connection_id = 103`));
    expect(row!.n).toBe(3);
  }, 60_000);
});

describe("an audit batch whose commit outlives the wait, from a writer idle past retention", () => {
  let idle: Awaited<ReturnType<typeof createPgDatabase>>;
  let idleDirect: Store;
  let idleStore: Store;
  let idleTrail: AuditTrail;

  beforeAll(async () => {
    idle = await createPgDatabase("pulse_audit_idle_writer");
    idleDirect = await openStore({ databaseUrl: idle.url });
    await idleDirect.migrate();
    idleStore = await openStore({ databaseUrl: idle.url, queryTimeoutMs: 500 });
    idleTrail = createAuditTrail(idleStore, { enabled: true, retentionDays: 1, bufferRecords: 1_000 }, quiet);
  });
  afterAll(async () => {
    vi.useRealTimers();
    await idleTrail?.close();
    await idleStore?.close();
    await idleDirect?.close();
    await idle?.drop();
  });

  const recordOn = (connectionId: number, n: number) => {
    for (let i = 0; i < n; i++) idleTrail.record({ connectionId, ownerId: 1, source: "query", apiKeyId: null, sql: `SELECT ${i}`, startedAt: Date.now(), durationMs: 1, rowCount: 1 });
  };

  it("has its writer's row again before the batch, so the batch is still not written twice", async () => {
    recordOn(104, 1);
    expect(await idleTrail.flush()).toBe(true);
    // Two days without a statement: the retention's prune deletes the idle writer's row.
    await idleDirect.db.execute(sql`UPDATE audit_writes SET at = now() - interval '2 days'`);
    await pruneAuditRecords(idleDirect.db, new Date(Date.now() - 86_400_000), 1_000);
    expect(rowsOf(await idleDirect.db.execute(sql`SELECT 1 FROM audit_writes`))).toHaveLength(0);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 2 * 86_400_000 });
    await slowFirstBatchCommit(idleDirect);
    recordOn(105, 3);
    expect(await idleTrail.flush()).toBe(false);
    await idleTrail.flush();
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    expect(await idleTrail.flush()).toBe(true);
    expect(idleTrail.pending).toBe(0);
    const [row] = rowsOf<{ n: number }>(await idleDirect.db.execute(sql`SELECT count(*)::int AS n FROM audit_records WHERE connection_id = 105`));
    expect(row!.n).toBe(3);
  }, 60_000);
});
