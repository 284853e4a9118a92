// /api/channels over HTTP: webhook and Slack channels with a test send to a local receiver;
// URLs are secrets (sealed at rest, never returned); other users' channels are 404. Private
// targets (refused) are tests/security/webhook-targets.test.ts.

import dnsPromises from "node:dns/promises";
import { createServer, type AddressInfo } from "node:net";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startDnsServer } from "../support/dns-server.js";
import { pgAdmin } from "../support/services.js";
import { createHarness, type Harness } from "../support/harness.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

let h: Harness;
let hooks: WebhookReceiver;

beforeAll(async () => {
  h = await createHarness({ env: { MONITOR_NOTIFY_TIMEOUT_MS: "500", ...LOCAL_RECEIVER_ENV } });
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await h?.close();
  await hooks?.close();
});

describe("POST /api/channels", () => {
  it("adds a channel and never returns its URL, which is sealed at rest", async () => {
    const user = await h.newUser();
    const secretPath = `/services/T0001/B0001/secret${user.id}token`;
    const res = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "slack", name: "Ops", url: `${hooks.url}${secretPath}` } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(Number), kind: "slack", name: "Ops", url_hint: `${hooks.url}/…`, enabled: true, created_at: expect.any(String) });
    expect(res.text).not.toContain("secret");
    const list = await h.call("GET", "/api/channels", { token: user.token });
    expect(list.body).toEqual([res.body]);
    expect(list.text).not.toContain("secret");
    const [row] = await pgAdmin<{ url_sealed: string }>("SELECT url_sealed FROM notification_channels WHERE id = $1", h.pgDatabase!.name, [res.body.id]);
    expect(row!.url_sealed).toMatch(/^v1:/);
    expect(row!.url_sealed).not.toContain("secret");
  });

  it.each([
    [{ kind: "webhook" }, "body.url"],
    [{ kind: "webhook", url: "not a url" }, "body.url"],
    [{ kind: "webhook", url: "ftp://example.com/x" }, "body.url"],
    [{ kind: "email", url: "https://example.com/x" }, "body.kind"],
    [{ kind: "webhook", url: "https://example.com/x", name: "" }, "body.name"],
  ])("answers 422 for %j naming %s", async (json, path) => {
    const user = await h.newUser();
    const res = await h.call("POST", "/api/channels", { token: user.token, json });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it("says what is wrong with a URL: too long is not 'not a URL'", async () => {
    const user = await h.newUser();
    const send = async (url: string) => (await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url } })).body.errors;
    expect(await send(`https://example.com/${"a".repeat(3000)}`)).toEqual([{ path: "body.url", message: "Too big: expected string to have <=2048 characters" }]);
    expect(await send("ftp://example.com/x")).toEqual([{ path: "body.url", message: "must be an http(s) URL" }]);
  });
});

describe("POST /api/channels/{id}/test", () => {
  it("posts the JSON payload to a generic webhook", async () => {
    const user = await h.newUser();
    const path = `/generic-${user.id}`;
    const created = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `${hooks.url}${path}` } });
    const res = await h.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, status_code: 200 });
    const [hook] = hooks.at(path);
    expect(hook!.headers["content-type"]).toMatch(/application\/json/);
    expect(hook!.body).toMatchObject({ event: "test", text: expect.stringContaining("Pulse test notification"), at: expect.any(String) });
    // Keyed as every notification is, each test by a key of its own (a receiver dropping repeats
    // by it keeps both).
    expect((await h.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token })).status).toBe(200);
    const keys = hooks.at(path).map((r) => r.headers["x-pulse-notification"]);
    expect(keys).toEqual([expect.stringMatching(new RegExp(`^test:channel:${created.body.id}:`)), expect.any(String)]);
    expect(new Set(keys).size).toBe(2);
  });

  it("posts only {text} to a Slack incoming webhook", async () => {
    const user = await h.newUser();
    const path = `/slack-${user.id}`;
    const created = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "slack", url: `${hooks.url}${path}` } });
    expect((await h.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token })).status).toBe(200);
    expect(hooks.at(path).map((r) => r.body)).toEqual([{ text: expect.stringContaining("Pulse test notification") }]);
  });

  it("answers 400 with the reason when the endpoint fails, times out or is unreachable, never showing the URL", async () => {
    const user = await h.newUser();
    const created = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `${hooks.url}/down-secret` } });
    hooks.failNext(1, 503);
    const failing = await h.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token });
    expect(failing.status).toBe(400);
    expect(failing.body).toMatchObject({ code: "connection_failed", detail: expect.stringContaining("HTTP 503") });
    hooks.hangNext(1);
    const started = Date.now();
    const hanging = await h.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token });
    expect(hanging.body.detail).toMatch(/no answer within 500 ms/);
    expect(Date.now() - started).toBeLessThan(3000);
    const closed = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: "http://127.0.0.1:1/secret-path" } });
    const unreachable = await h.call("POST", `/api/channels/${closed.body.id}/test`, { token: user.token });
    expect(unreachable.status).toBe(400);
    expect(unreachable.body.detail).toMatch(/could not reach/);
    for (const res of [failing, hanging, unreachable]) expect(res.text).not.toContain("secret");
  });

  it("answers 400 when the endpoint switches protocols (101), which once left the send, and every delivery after it, waiting for ever", async () => {
    const switching = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.once("data", () => socket.write("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: x\r\n\r\n"));
    });
    await new Promise<void>((resolve) => switching.listen(0, "127.0.0.1", resolve));
    try {
      const user = await h.newUser();
      const { port } = switching.address() as AddressInfo;
      const created = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `http://127.0.0.1:${port}/hook` } });
      const res = await Promise.race([
        h.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token }),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 5_000)),
      ]);
      expect(res, "no answer within 5 s").not.toBeNull();
      expect(res!.status).toBe(400);
      expect(res!.body.detail).toMatch(/HTTP 101/);
    } finally {
      switching.close();
    }
  });
});

describe("webhook hosts under WEBHOOK_ALLOW_PRIVATE", () => {
  it("are resolved from the event loop as any other's (DNS servers asked, not the system's thread-pool lookup)", async () => {
    const dns = await startDnsServer();
    const saved = dnsPromises.getServers();
    dnsPromises.setServers([dns.address]);
    // Its own send timeout: a resolver of its own, made while the stand-in is the system's DNS.
    const own = await createHarness({ env: { MONITOR_NOTIFY_TIMEOUT_MS: "1237", ...LOCAL_RECEIVER_ENV } });
    try {
      dns.answers.set("hooks.pulse-test.example", ["127.0.0.1"]);
      const user = await own.newUser();
      const { port } = new URL(hooks.url);
      const created = await own.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `http://hooks.pulse-test.example:${port}/by-name-${user.id}` } });
      expect(created.status, created.text).toBe(201);
      const sent = await own.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token });
      expect(sent.status, sent.text).toBe(200);
      expect(hooks.at(`/by-name-${user.id}`)).toHaveLength(1);
      expect(dns.asked).toContain("A hooks.pulse-test.example");
    } finally {
      dnsPromises.setServers(saved);
      await own.close();
      await dns.close();
    }
  });
});

describe("test notifications", () => {
  it("are limited to 10 a minute per user (each is a request Pulse sends), with Retry-After", async () => {
    const user = await h.newUser();
    const path = `/limited-${user.id}`;
    const created = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `${hooks.url}${path}` } });
    const answers = await Promise.all(Array.from({ length: 14 }, () => h.call("POST", `/api/channels/${created.body.id}/test`, { token: user.token })));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(10);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused).toHaveLength(4);
    expect(refused[0]!.headers.get("retry-after")).toBeTruthy();
    expect(hooks.at(path)).toHaveLength(10);
  });
});

describe("PATCH /api/channels/{id}", () => {
  it("renames, disables and enables a channel again, leaving its URL as it is", async () => {
    const user = await h.newUser();
    const created = (await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", name: "Ops", url: `${hooks.url}/renamed` } })).body;
    const renamed = await h.call("PATCH", `/api/channels/${created.id}`, { token: user.token, json: { name: "  On call  " } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toEqual({ ...created, name: "On call" });
    const disabled = await h.call("PATCH", `/api/channels/${created.id}`, { token: user.token, json: { enabled: false } });
    expect(disabled.body).toEqual({ ...created, name: "On call", enabled: false });
    expect((await h.call("GET", "/api/channels", { token: user.token })).body).toEqual([disabled.body]);
    expect((await h.call("PATCH", `/api/channels/${created.id}`, { token: user.token, json: {} })).body).toEqual(disabled.body);
    expect((await h.call("PATCH", `/api/channels/${created.id}`, { token: user.token, json: { enabled: true } })).body.enabled).toBe(true);
  });

  it.each([
    [{ name: "" }, "body.name"],
    [{ enabled: "no" }, "body.enabled"],
    [{ url: "https://example.com/new" }, "body.url"],
  ])("answers 422 for %j naming %s, and changes nothing", async (json, path) => {
    const user = await h.newUser();
    const created = (await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `${hooks.url}/kept` } })).body;
    const res = await h.call("PATCH", `/api/channels/${created.id}`, { token: user.token, json });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
    expect((await h.call("GET", "/api/channels", { token: user.token })).body).toEqual([created]);
  });

  it("answers 404 to another user's channel and 401 without a token, changing nothing", async () => {
    const user = await h.newUser();
    const created = (await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `${hooks.url}/mine` } })).body;
    const intruder = await h.newUser();
    expect((await h.call("PATCH", `/api/channels/${created.id}`, { token: intruder.token, json: { enabled: false } })).status).toBe(404);
    expect((await h.call("PATCH", `/api/channels/${created.id}`, { json: { enabled: false } })).status).toBe(401);
    expect((await h.call("GET", "/api/channels", { token: user.token })).body).toEqual([created]);
  });
});

describe("DELETE /api/channels/{id}", () => {
  it("deletes a channel", async () => {
    const user = await h.newUser();
    const created = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `${hooks.url}/x` } });
    expect((await h.call("DELETE", `/api/channels/${created.body.id}`, { token: user.token })).status).toBe(204);
    expect((await h.call("GET", "/api/channels", { token: user.token })).body).toEqual([]);
    expect((await h.call("DELETE", `/api/channels/${created.body.id}`, { token: user.token })).status).toBe(404);
  });

  it("answers 404 to another user's channel, for delete and test alike", async () => {
    const user = await h.newUser();
    const created = await h.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `${hooks.url}/owned` } });
    const intruder = await h.newUser();
    expect((await h.call("DELETE", `/api/channels/${created.body.id}`, { token: intruder.token })).status).toBe(404);
    expect((await h.call("POST", `/api/channels/${created.body.id}/test`, { token: intruder.token })).status).toBe(404);
    expect((await h.call("GET", "/api/channels", { token: intruder.token })).body).toEqual([]);
    expect((await h.call("GET", "/api/channels", { token: user.token })).body).toHaveLength(1);
    expect(hooks.at("/owned")).toEqual([]);
  });

  it("answers 401 without a token", async () => {
    expect((await h.call("GET", "/api/channels")).status).toBe(401);
    expect((await h.call("POST", "/api/channels", { json: { kind: "webhook", url: "https://example.com" } })).status).toBe(401);
  });
});
