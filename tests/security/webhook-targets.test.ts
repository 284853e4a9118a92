// Webhooks as a way into the network: a channel's URL comes from a user, so every address
// that is not public (loopback, private, link-local / cloud metadata, in every IPv6 form that
// carries an IPv4 address) is refused when a channel is added and again on every send.

import { networkInterfaces } from "node:os";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { sealSecret } from "../../src/auth/secrets.js";
import { urlHint } from "../../src/services/channels.js";
import { channelSealContext, deliverDueNotifications } from "../../src/monitoring/notifiers.js";
import { enqueueNotifications } from "../../src/store/monitoring-alerts.js";
import { insertChannel } from "../../src/store/monitoring-channels.js";
import { createHarness, type Harness } from "../support/harness.js";
import { pgAdmin } from "../support/services.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

let hooks: WebhookReceiver;

/** An address of this machine's network card (not loopback): public or not, it reaches every
 * service listening on all interfaces, Pulse's own included. */
const ownAddress = Object.values(networkInterfaces())
  .flat()
  .find((info) => info && !info.internal && info.family === "IPv4")?.address;

beforeAll(async () => {
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await hooks?.close();
});

describe("private targets, refused by default (WEBHOOK_ALLOW_PRIVATE off)", () => {
  let strict: Harness;
  beforeAll(async () => {
    strict = await createHarness({ env: { MONITOR_NOTIFY_TIMEOUT_MS: "500" } });
  });
  afterAll(async () => strict?.close());

  it.each([
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://10.0.0.8/hook",
    "http://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:0:127.0.0.1]/hook", // IPv4-translated form of 127.0.0.1
    "http://[::ffff:0:a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b::10.0.0.1]/hook", // NAT64 form of a private address
    "http://[64:ff9b::7f00:1]/hook",
    "http://[64:ff9b:1::a9fe:a9fe]/hook", // local-use NAT64
    "http://2130706433/hook", // 127.0.0.1 as one number
    "http://0x7f.1/hook",
    "http://192.0.2.10/hook", // documentation ranges
    "http://198.51.100.7/hook",
    "http://203.0.113.99/hook",
    "http://[2001:db8::1]/hook",
  ])("refuses a channel posting to %s with 422 and the reason", async (url) => {
    const user = await strict.newUser();
    for (const kind of ["webhook", "slack"]) {
      const res = await strict.call("POST", "/api/channels", { token: user.token, json: { kind, url } });
      expect(res.status).toBe(422);
      expect(res.body).toMatchObject({ code: "invalid_input", detail: expect.stringMatching(/^Invalid input: body\.url: refused: its host is not a public address/) });
      expect(res.body.errors).toEqual([{ path: "body.url", message: expect.stringMatching(/^refused: its host is not a public address/) }]);
    }
    expect((await strict.call("GET", "/api/channels", { token: user.token })).body).toEqual([]);
  });

  it("refuses a channel posting to this machine's own address (a public one reaches every service listening on all interfaces)", async () => {
    // Here that address is in a private range too; on a host whose card carries a public one,
    // only isThisMachine refuses it.
    expect(ownAddress, "this machine has no IPv4 address besides loopback").toBeDefined();
    const user = await strict.newUser();
    const res = await strict.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: `http://${ownAddress}:8000/hook` } });
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(/^Invalid input: body\.url: refused: its host is not a public address/);
  });

  it("refuses a host name that does not resolve", async () => {
    const user = await strict.newUser();
    const res = await strict.call("POST", "/api/channels", { token: user.token, json: { kind: "webhook", url: "https://no-such-host.invalid/hook" } });
    expect(res.status).toBe(422);
    expect(res.body.detail).toBe("Invalid input: body.url: refused: its host name could not be resolved");
  });

  it("never connects to a private address when sending, whether named or literal", async () => {
    // Channels added when their host was public, say, and re-pointed since (DNS rebinding):
    // sending checks the address it connects to, for tests and alerts alike.
    const user = await strict.newUser();
    const port = new URL(hooks.url).port;
    const targets = [`${hooks.url}/rebound-literal`, `http://localhost:${port}/rebound-name`, `http://${ownAddress}:${port}/rebound-own`];
    for (const url of targets) {
      const channel = await insertChannel(strict.deps.store.db, {
        ownerId: user.id, kind: "webhook", name: "rebound", enabled: true, urlHint: urlHint(url),
        urlSealed: sealSecret(url, strict.config.secretsKey, channelSealContext(user.id)),
      });
      const res = await strict.call("POST", `/api/channels/${channel.id}/test`, { token: user.token });
      expect(res.status).toBe(400);
      expect(res.body.detail).toMatch(/^Test notification not delivered: refused: its host is not a public address/);
      await enqueueNotifications(strict.deps.store.db, [
        { dedupKey: `rebound:${channel.id}`, channelId: channel.id, alertId: null, payload: { event: "test", text: "x", at: "" }, nextAttemptAt: new Date(0) },
      ]);
    }
    expect(await deliverDueNotifications(strict.deps)).toBe(0);
    expect(hooks.at("/rebound-literal")).toEqual([]);
    expect(hooks.at("/rebound-name")).toEqual([]);
    expect(hooks.at("/rebound-own")).toEqual([]);
    const failed = await pgAdmin<{ last_error: string }>("SELECT last_error FROM sent_notifications WHERE dedup_key LIKE 'rebound:%'", strict.pgDatabase!.name);
    expect(failed.map((r) => r.last_error)).toEqual(targets.map(() => expect.stringMatching(/not a public address/)));
  });
});
