// Threat: one user's flood of notifications (alerts opened and resolved again and again, to
// fifty channels) holding up everyone else's alerts, and Pulse sending requests without bound.
// The outbox is claimed with users taking turns, and one delivery runs at a time per process:
// actions asking for one meanwhile share the next.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { sealSecret } from "../../src/auth/secrets.js";
import { channelSealContext, deliverDueNotifications } from "../../src/monitoring/notifiers.js";
import { urlHint } from "../../src/services/channels.js";
import { claimDueNotifications, enqueueNotifications } from "../../src/store/monitoring-alerts.js";
import { insertChannel } from "../../src/store/monitoring-channels.js";
import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

let h: Harness;
let hooks: WebhookReceiver;

beforeAll(async () => {
  hooks = await startWebhookReceiver();
  h = await createHarness({ env: { ...LOCAL_RECEIVER_ENV } });
});
afterAll(async () => {
  await h?.close();
  await hooks?.close();
});

/** A channel of a new user posting to `path`, with `count` notifications due since `dueAt`. */
async function floodOf(path: string, count: number, dueAt: number, on: Harness = h, receiver: WebhookReceiver = hooks): Promise<void> {
  const user = await on.newUser();
  const url = `${receiver.url}${path}`;
  const channel = await insertChannel(on.deps.store.db, {
    ownerId: user.id,
    kind: "webhook",
    name: path,
    enabled: true,
    urlHint: urlHint(url),
    urlSealed: sealSecret(url, on.config.secretsKey, channelSealContext(user.id)),
  });
  const tag = uniqueName("n");
  await enqueueNotifications(
    on.deps.store.db,
    Array.from({ length: count }, (_, i) => ({
      dedupKey: `${tag}:${i}`,
      channelId: channel.id,
      alertId: null,
      payload: { event: "test", text: `${path} ${i}`, at: "" },
      nextAttemptAt: new Date(dueAt + i),
    })),
  );
}

describe("the notification outbox", () => {
  it("lets users take turns: another user's one alert goes out in the first delivery behind a flood", async () => {
    const flood = `/flood-${uniqueName("a")}`;
    const single = `/single-${uniqueName("b")}`;
    const long = Date.now() - 3_600_000;
    await floodOf(flood, 60, long);
    // Queued after all of the flood.
    await floodOf(single, 1, long + 1_000);
    expect(await deliverDueNotifications(h.deps)).toBe(50);
    expect(hooks.at(single)).toHaveLength(1);
    expect(hooks.at(flood)).toHaveLength(49);
    await deliverDueNotifications(h.deps);
    expect(hooks.at(flood)).toHaveLength(60);
  });

  it("sends another user's alert in the next delivery however large a flood queued before it", async () => {
    const flood = `/backlog-${uniqueName("d")}`;
    const single = `/behind-${uniqueName("e")}`;
    const long = Date.now() - 7_200_000;
    // More than a claim ranks from the oldest (1,000): the one alert is not among them.
    await floodOf(flood, 1_500, long);
    await floodOf(single, 1, long + 10_000);
    expect(await deliverDueNotifications(h.deps)).toBe(50);
    expect(hooks.at(single)).toHaveLength(1);
    for (let i = 0; i < 30 && hooks.at(flood).length < 1_500; i++) await deliverDueNotifications(h.deps);
    expect(hooks.at(flood)).toHaveLength(1_500);
  }, 60_000);

  it("runs one delivery at a time: calls meanwhile share the next, so requests at once cannot multiply the sends", async () => {
    const flood = `/many-${uniqueName("c")}`;
    await floodOf(flood, 160, Date.now() - 60_000);
    const sent = await Promise.all(Array.from({ length: 6 }, () => deliverDueNotifications(h.deps)));
    // The first delivery and the one after it: 50 each, where six at once sent all 160.
    expect(sent).toEqual([50, 50, 50, 50, 50, 50]);
    expect(hooks.at(flood)).toHaveLength(100);
  });
});

describe("a notification still being sent", () => {
  it("is not claimed again (and sent twice) while its send may last, however long MONITOR_NOTIFY_TIMEOUT_MS lets it", async () => {
    let ahead = 0;
    const slow = await startWebhookReceiver();
    const own = await createHarness({ env: { ...LOCAL_RECEIVER_ENV, MONITOR_NOTIFY_TIMEOUT_MS: "90000" }, now: () => Date.now() + ahead });
    try {
      const path = `/slow-${uniqueName("s")}`;
      await floodOf(path, 1, Date.now() - 1_000, own, slow);
      slow.delayNext(1, 3_000);
      const delivering = deliverDueNotifications(own.deps);
      await vi.waitFor(() => expect(slow.at(path)).toHaveLength(1));
      // Another instance, a minute later, while the first send still waits for its answer.
      ahead += 61_000;
      const now = own.deps.monitoring.now();
      expect(await claimDueNotifications(own.deps.store.db, { now: new Date(now), retryAt: new Date(now + 60_000), limit: 50 })).toEqual([]);
      expect(await delivering).toBe(1);
    } finally {
      await slow.close();
      await own.close();
    }
  });
});
