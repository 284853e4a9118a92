// Rotating SECRETS_KEY and JWT_SECRET across instances of one deployment (README, Rotating
// secrets): an instance given the new key as current and the old one as previous still opens
// what was sealed, and still accepts tokens signed, under the old one; one with the new key
// alone does not, and refuses them as it refuses any other key's.

import { randomBytes } from "node:crypto";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addWebhook } from "../support/monitoring.js";
import { mariaTarget, type TargetDb } from "../support/targets.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const KEY_A = randomBytes(32).toString("hex");
const KEY_B = randomBytes(32).toString("base64");
const JWT_A = randomBytes(32).toString("base64url");
const JWT_B = randomBytes(32).toString("base64url");

let a: Harness;
const instances: Harness[] = [];
let target: TargetDb;
let hooks: WebhookReceiver;
/** Another instance of `a`'s deployment (its store), with these secrets. */
const instance = async (env: Record<string, string>) => {
  const h = await createHarness({ shareWith: a, env: { ...LOCAL_RECEIVER_ENV, ...env } });
  instances.push(h);
  return h;
};

beforeAll(async () => {
  hooks = await startWebhookReceiver();
  target = await mariaTarget();
  a = await createHarness({ env: { ...LOCAL_RECEIVER_ENV, SECRETS_KEY: KEY_A, JWT_SECRET: JWT_A } });
});
afterAll(async () => {
  for (const h of instances) await h.close();
  await a?.close();
  await target?.drop();
  await hooks?.close();
});

const query = (h: Harness, token: string, id: number) => h.call("POST", `/databases/${id}/query`, { token, json: { sql: "SELECT name FROM items ORDER BY id" } });

describe("SECRETS_KEY_PREVIOUS", () => {
  it("keeps a connection saved under the old key working, password and all, where SECRETS_KEY is new", async () => {
    const user = await a.newUser();
    const saved = await a.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
    expect(saved.status, saved.text).toBe(201);
    const id = saved.body.db_connection.id as number;

    const rotating = await instance({ SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: `${randomBytes(32).toString("hex")},${KEY_A}`, JWT_SECRET: JWT_A });
    const ran = await query(rotating, user.token, id);
    expect(ran.status, ran.text).toBe(200);
    expect(ran.body.data.rows).toEqual([["one"], ["two"]]);

    // The new key alone opens nothing sealed under the old one: as any key that is not the one.
    const newOnly = await instance({ SECRETS_KEY: KEY_B, JWT_SECRET: JWT_A });
    const refused = await query(newOnly, user.token, id);
    const stranger = await instance({ SECRETS_KEY: randomBytes(32).toString("hex"), JWT_SECRET: JWT_A });
    const today = await query(stranger, user.token, id);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: today.status, code: today.body.code });
    expect(refused.text).not.toContain(target.password);
  });

  it("seals what is saved or changed under SECRETS_KEY only", async () => {
    const rotating = await instance({ SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A, JWT_SECRET: JWT_A });
    const user = await rotating.newUser();
    const saved = await rotating.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
    expect(saved.status, saved.text).toBe(201);
    const id = saved.body.db_connection.id as number;
    const newOnly = await instance({ SECRETS_KEY: KEY_B, JWT_SECRET: JWT_A });
    expect((await query(newOnly, user.token, id)).status).toBe(200);
    expect((await query(a, user.token, id)).status).not.toBe(200);
  });

  it("keeps a notification channel's webhook URL sealed under the old key working", async () => {
    const user = await a.newUser();
    const path = `/rotation-${user.id}`;
    const channel = await addWebhook(a, user.token, `${hooks.url}${path}`);

    const rotating = await instance({ SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A, JWT_SECRET: JWT_A });
    const sent = await rotating.call("POST", `/api/channels/${channel}/test`, { token: user.token });
    expect(sent.status, sent.text).toBe(200);
    expect(hooks.at(path)).toHaveLength(1);

    const newOnly = await instance({ SECRETS_KEY: KEY_B, JWT_SECRET: JWT_A });
    const refused = await newOnly.call("POST", `/api/channels/${channel}/test`, { token: user.token });
    expect(refused.status).toBe(400);
    expect(refused.body.code).toBe("connection_failed");
    expect(refused.text).not.toContain(path);
    expect(hooks.at(path)).toHaveLength(1);
  });
});

describe("JWT_SECRET_PREVIOUS", () => {
  it("accepts a token signed with the old secret where JWT_SECRET is new; the new secret alone refuses it", async () => {
    const user = await a.newUser();
    const rotating = await instance({ SECRETS_KEY: KEY_A, JWT_SECRET: JWT_B, JWT_SECRET_PREVIOUS: JWT_A });
    const me = await rotating.call("GET", "/users/me", { token: user.token });
    expect(me.status, me.text).toBe(200);
    expect(me.body.id).toBe(user.id);

    const newOnly = await instance({ SECRETS_KEY: KEY_A, JWT_SECRET: JWT_B });
    const refused = await newOnly.call("GET", "/users/me", { token: user.token });
    expect(refused.status).toBe(401);
    expect(refused.body.detail).toBe("Invalid token");
  });

  it("signs new tokens with JWT_SECRET only: the old secret alone refuses them, the new one accepts them", async () => {
    const rotating = await instance({ SECRETS_KEY: KEY_A, JWT_SECRET: JWT_B, JWT_SECRET_PREVIOUS: JWT_A });
    const user = await rotating.newUser();
    expect((await rotating.call("GET", "/users/me", { token: user.token })).status).toBe(200);
    const newOnly = await instance({ SECRETS_KEY: KEY_A, JWT_SECRET: JWT_B });
    expect((await newOnly.call("GET", "/users/me", { token: user.token })).status).toBe(200);
    expect((await a.call("GET", "/users/me", { token: user.token })).status).toBe(401);
  });

  it("still refuses an old secret's token once it is revoked", async () => {
    const user = await a.newUser();
    const rotating = await instance({ SECRETS_KEY: KEY_A, JWT_SECRET: JWT_B, JWT_SECRET_PREVIOUS: JWT_A });
    expect((await rotating.call("GET", "/users/me", { token: user.token })).status).toBe(200);
    expect((await rotating.call("POST", "/logout", { token: user.token })).status).toBe(204);
    expect((await rotating.call("GET", "/users/me", { token: user.token })).status).toBe(401);
  });
});
