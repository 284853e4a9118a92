// Security: database passwords and account passwords never appear in clear in the metadata
// store, Redis, the logs or any response. Each secret is a unique literal searched for verbatim.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type ApiResponse, type Harness } from "../support/harness.js";
import { pgAdmin, uniqueName } from "../support/services.js";
import { mariaTarget, postgresTarget, type TargetDb } from "../support/targets.js";

let h: Harness;
const targets: TargetDb[] = [];
const responses: ApiResponse[] = [];
const secrets: string[] = [];

beforeAll(async () => {
  h = await createHarness({ store: "postgresql", sessions: "redis" });
  targets.push(await postgresTarget(), await mariaTarget());
});
afterAll(async () => {
  for (const t of targets) await t.drop();
  await h?.close();
});

async function record(res: Promise<ApiResponse>) {
  const r = await res;
  responses.push(r);
  return r;
}

describe("secrets at rest and in transit", () => {
  it("never stores, caches, logs or returns a password in clear", async () => {
    const accountPassword = uniqueName("acct_pw");
    secrets.push(accountPassword, ...targets.map((t) => t.password));
    const email = `${uniqueName("sec")}@example.com`;
    await record(h.call("POST", "/users/", { json: { name: "Sec", email, password: accountPassword } }));
    const login = await record(h.call("POST", "/login", { form: { username: email, password: accountPassword } }));
    const token = login.body.access_token as string;
    await record(h.call("POST", "/login", { form: { username: email, password: `${accountPassword}-wrong` } }));

    for (const target of targets) {
      const added = await record(h.call("POST", "/databases/add_db_connection", { token, json: target.body }));
      expect(added.status).toBe(201);
      const id = added.body.db_connection.id;
      await record(h.call("GET", `/databases/${id}`, { token }));
      await record(h.call("POST", `/databases/${id}/test`, { token }));
      await record(h.call("PUT", `/databases/${id}`, { token, json: { db_password: target.password } }));
      // A failed attempt logs and answers an error: neither may carry the password.
      await record(h.call("PUT", `/databases/${id}`, { token, json: { db_password: `${target.password}-bad`, username: "nobody_here" } }));
    }
    await record(h.call("GET", "/databases", { token }));
    await record(h.call("GET", "/users/me", { token }));

    const storeText = (
      await pgAdmin<{ t: string }>(
        `SELECT row_to_json(u)::text AS t FROM users u UNION ALL SELECT row_to_json(c)::text FROM db_connections c`,
        h.pgDatabase!.name,
      )
    )
      .map((r) => r.t)
      .join("\n");
    expect(storeText).toContain("v1:"); // the sealed form is there...

    const keys = await h.redis!.raw.keys(`${h.redis!.prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    const redisText = (
      await Promise.all(
        keys.map(async (key) => {
          const raw = h.redis!.raw;
          switch (await raw.type(key)) {
            case "hash":
              return JSON.stringify(await raw.hgetall(key));
            case "zset": // the live instances
              return JSON.stringify(await raw.zrange(key, 0, -1));
            case "list":
              return JSON.stringify(await raw.lrange(key, 0, -1));
            default:
              return String(await raw.get(key));
          }
        }),
      )
    ).join("\n");

    const logText = h.logs.join("");
    expect(logText.length).toBeGreaterThan(0);
    const responseText = responses.map((r) => r.text).join("\n");

    for (const secret of secrets) {
      expect(storeText, "metadata store").not.toContain(secret); // ...but never the clear text
      expect(redisText, "redis").not.toContain(secret);
      expect(logText, "logs").not.toContain(secret);
      expect(responseText, "responses").not.toContain(secret);
    }
    expect(responseText).not.toMatch(/\$2[aby]\$/); // no bcrypt hash either
  });
});
