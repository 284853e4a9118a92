// CONNECT_TIMEOUT_MS bounds the whole of a new connection: TCP, TLS, login and the session
// setup Pulse sends before the first statement. Each stage had a bound of its own, so a server
// slow at each (or a slow link) held a PostgreSQL connect, and the request waiting on it, about
// six times the setting, and a MySQL one twice it and 2 s more (then answered as a statement
// timeout of 30 s).

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";
import { mariaTarget, postgresTarget, type TargetDb } from "../support/targets.js";

const CONNECT_TIMEOUT_MS = 1_000;
/** What a loaded machine may add to the bound. */
const SLACK_MS = 600;

let h: Harness;
const targets: TargetDb[] = [];
const relays: TcpRelay[] = [];
beforeAll(async () => {
  h = await createHarness({ env: { CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) } });
});
afterAll(async () => {
  await Promise.all(relays.map((r) => r.close()));
  await h?.close();
  for (const t of targets) await t.drop();
});

async function throughRelay(target: TargetDb) {
  targets.push(target);
  const relay = await startTcpRelay({ host: String(target.body.host), port: Number(target.body.port) });
  relays.push(relay);
  return { relay, body: { ...target.body, port: relay.port } };
}

async function timedAdd(body: Record<string, unknown>) {
  const user = await h.newUser();
  const startedAt = performance.now();
  const res = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: body });
  return { res, ms: performance.now() - startedAt };
}

describe("a connection slower to set up than CONNECT_TIMEOUT_MS", () => {
  it("PostgreSQL over a link of 300 ms a round trip (five round trips to set up): connection_failed within about the timeout", async () => {
    const { relay, body } = await throughRelay(await postgresTarget());
    relay.delay(300);
    const { res, ms } = await timedAdd(body);
    expect({ status: res.status, code: res.body.code }, res.text).toEqual({ status: 400, code: "connection_failed" });
    expect(res.body.detail).toContain(`within ${CONNECT_TIMEOUT_MS} ms`);
    expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
  });

  it("MySQL whose server never answers the first statement after login: connection_failed within about the timeout", async () => {
    const { relay, body } = await throughRelay(await mariaTarget());
    relay.freezeOn("SELECT VERSION()");
    const { res, ms } = await timedAdd(body);
    expect({ status: res.status, code: res.body.code }, res.text).toEqual({ status: 400, code: "connection_failed" });
    expect(res.body.detail).toContain(`within ${CONNECT_TIMEOUT_MS} ms`);
    expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
  });
});
