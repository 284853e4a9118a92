// A database server that never closes its side of a connection Pulse lets go of (a hostile host,
// or a broken proxy, that keeps the TCP connection open and goes silent): Pulse's goodbye (pg's
// Terminate and FIN, mysql2's COM_QUIT) was all it did, so each connection it ended kept its
// socket open for good, one file descriptor leaked per connection test or closed pool, as often
// as a user liked. Every socket Pulse ends is closed within a short grace.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { CLOSE_GRACE_MS } from "../../src/connectors/drivers/close-within.js";
import { createHarness, type Harness } from "../support/harness.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";
import { mariaTarget, postgresTarget, type TargetDb } from "../support/targets.js";

let h: Harness;
const targets: TargetDb[] = [];
const relays: TcpRelay[] = [];
beforeAll(async () => {
  h = await createHarness();
});
afterAll(async () => {
  await Promise.all(relays.map((r) => r.close()));
  await h?.close();
  for (const t of targets) await t.drop();
});

async function lingeringTarget(dialect: "postgresql" | "mysql") {
  const target = dialect === "postgresql" ? await postgresTarget() : await mariaTarget();
  targets.push(target);
  const relay = await startTcpRelay({ host: String(target.body.host), port: Number(target.body.port) });
  relays.push(relay);
  relay.linger(true);
  return { relay, body: { ...target.body, port: relay.port } };
}

/** Whether every socket to `relay` is closed within the grace (and a margin for a loaded machine). */
async function allClosed(relay: TcpRelay): Promise<boolean> {
  for (const deadline = Date.now() + CLOSE_GRACE_MS + 2_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    if (relay.clientsHoldingOpen === 0) return true;
  }
  return relay.clientsHoldingOpen === 0;
}

describe.each(["postgresql", "mysql"] as const)("a %s server that never closes its side", (dialect) => {
  it("a connection test leaves no socket open", async () => {
    const user = await h.newUser();
    const { relay, body } = await lingeringTarget(dialect);
    const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: body });
    expect(added.status, added.text).toBe(201);
    const tested = await h.call("POST", `/databases/${added.body.db_connection.id}/test`, { token: user.token });
    expect(tested.status, tested.text).toBe(200);
    expect(relay.accepted).toBeGreaterThanOrEqual(2);
    expect(await allClosed(relay), `${relay.clientsHoldingOpen} sockets still open`).toBe(true);
  });

  it("a saved connection's pool, closed as the connection is deleted, leaves no socket open", async () => {
    const user = await h.newUser();
    const { relay, body } = await lingeringTarget(dialect);
    const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: body });
    expect(added.status, added.text).toBe(201);
    const id = added.body.db_connection.id as number;
    const ran = await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: "SELECT 1 AS one" } });
    expect(ran.status, ran.text).toBe(200);
    expect(relay.clientsHoldingOpen).toBeGreaterThan(0); // the pool's connection, idle
    expect((await h.call("DELETE", `/databases/${id}`, { token: user.token })).status).toBe(204);
    expect(await allClosed(relay), `${relay.clientsHoldingOpen} sockets still open`).toBe(true);
  });
});
