// Redis going away once a revocation or a deletion is committed (through a relay the test cuts,
// never the shared server): the answer is the committed one, as logout's, and what Redis kept is
// left to its TTLs, with a warning saying so.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

describe("a deletion committed while Redis is away", () => {
  let relay: TcpRelay;
  let h: Harness;
  beforeAll(async () => {
    relay = await startTcpRelay({ host: "127.0.0.1", port: 6379 });
    h = await createHarness({ sessions: "redis", env: { REDIS_URL: `redis://127.0.0.1:${relay.port}` } });
  });
  afterAll(async () => {
    relay?.refuse(false);
    relay?.freezeAfter(null);
    await h?.close();
    await relay?.close();
  });

  /** Redis answers again, and the session store hears it. */
  const healed = async () => {
    relay.refuse(false);
    relay.freezeAfter(null);
    await vi.waitFor(async () => expect((await h.call("GET", "/health")).status).toBe(200), { timeout: 15_000, interval: 100 });
  };

  it("answers 204 to revoking an API key, and the key is refused", async () => {
    const user = await h.newUser();
    const created = await h.call("POST", "/api/keys", { token: user.token, json: { name: "k", scopes: ["query"] } });
    expect(created.status).toBe(201);

    relay.refuse(true);
    relay.cut();
    try {
      const revoked = await h.call("DELETE", `/api/keys/${created.body.id}`, { token: user.token });
      expect(revoked.status, revoked.text).toBe(204);
      expect((await h.call("GET", "/databases", { token: created.body.key })).status).toBe(401);
      expect(h.logs.join("")).toContain("revoke API key: the session store is away");
    } finally {
      await healed();
    }
  }, 30_000);

  it("answers 204 to deleting an account when Redis stops answering once the user is deleted", async () => {
    const user = await h.newUser();
    // The password is confirmed and the user deleted with Redis answering; it goes silent once
    // the deletion is announced to the other instances (the message `user:<id>`, whose reply is
    // lost), before what Redis keeps for the user is removed.
    // New connections refused meanwhile: ioredis, seeing the command time out, would reconnect
    // through the relay before the leftovers are removed on a loaded machine, and find Redis.
    relay.refuse(true);
    relay.freezeAfter(`\nuser:${user.id}\r\n`);
    try {
      const deleted = await h.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } });
      expect(deleted.status, deleted.text).toBe(204);
      expect(h.logs.join("")).toContain("delete account: the session store is away");
      expect((await h.call("GET", "/users/me", { token: user.token })).status).toBe(401);
    } finally {
      await healed();
    }
  }, 30_000);
});
