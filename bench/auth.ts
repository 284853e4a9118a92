// What authentication costs a request, in process (no sockets, no load generator): Pulse's
// requireAuth in front of a handler that does nothing, with a login token (JWT) and with an
// API key, in alternating rounds. Both credentials are verified once and then answered from
// their per-process caches, as in steady state.
// Run: npx tsx bench/auth.ts

import { Hono } from "hono";

import { requireAuth } from "../src/http/auth.js";
import type { AppEnv } from "../src/http/context.js";
import { createHarness } from "../tests/support/harness.js";
import { machine, median } from "./lib.js";

const ROUNDS = Number(process.env.ROUNDS ?? 7);
const REQUESTS = Number(process.env.REQUESTS ?? 5000);

const h = await createHarness({ sessions: "memory" });
try {
  const user = await h.newUser();
  const created = await h.call("POST", "/api/keys", { token: user.token, json: { name: "bench", scopes: ["query"] } });
  if (created.status !== 201) throw new Error(`key: ${created.status} ${created.text}`);
  const credentials = { "login token (JWT)": user.token, "API key": created.body.key as string };
  const app = new Hono<AppEnv>().use(requireAuth(h.deps, [])).get("/probe", (c) => c.text(c.get("auth").kind));

  const perRequestUs = async (token: string) => {
    const headers = { authorization: `Bearer ${token}` };
    const started = performance.now();
    for (let i = 0; i < REQUESTS; i++) {
      const res = await app.request("/probe", { headers });
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      await res.arrayBuffer();
    }
    return ((performance.now() - started) * 1000) / REQUESTS;
  };

  for (const token of Object.values(credentials)) await perRequestUs(token); // warm-up: JIT, caches
  const results = new Map<string, number[]>(Object.keys(credentials).map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? Object.entries(credentials) : Object.entries(credentials).reverse();
    for (const [name, token] of order) results.get(name)!.push(await perRequestUs(token));
  }
  const jwt = median(results.get("login token (JWT)")!);
  console.log(`machine: ${machine()}; ${ROUNDS} alternating rounds of ${REQUESTS} sequential requests (medians)`);
  console.log("| credential | µs per request | vs JWT |");
  console.log("|---|---:|---:|");
  for (const [name, values] of results) console.log(`| ${name} | ${median(values).toFixed(1)} | ${(median(values) / jwt).toFixed(2)}x |`);
} finally {
  await h.close();
}
