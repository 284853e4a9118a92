// Sending notifications: a generic webhook gets the JSON payload, a Slack incoming webhook
// gets `{text}`, and only at a public address (webhook-targets.ts). Delivery drains the outbox
// (sent_notifications): a failed send is retried on a later tick with backoff, and a sent one
// is never sent again.

import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

import { openingKeys, openSecret } from "../auth/secrets.js";
import type { Deps } from "../deps.js";
import { OneAtATime } from "../one-at-a-time.js";
import {
  claimDueNotifications,
  markNotificationFailed,
  markNotificationSent,
} from "../store/monitoring-alerts.js";
import { channelsByIds } from "../store/monitoring-channels.js";
import type { NotificationChannelRow } from "../store/schema.js";
import { NonPublicTargetError, nonPublicLiteral, TARGET_PROBLEMS, webhookLookup, webhookResolver } from "./webhook-targets.js";

export type ChannelKind = NotificationChannelRow["kind"];

/** What every notification says; webhooks receive it as is. */
export interface NotificationPayload {
  event: "alert.opened" | "alert.resolved" | "test";
  text: string;
  alert_id?: number;
  sequence?: number;
  table?: { id: number; schema: string | null; name: string; connection_id: number };
  check?: string;
  check_kind?: string;
  /** Opened: the failure. Resolved: what the check says now (or who resolved it by hand). */
  detail?: string | null;
  /** Resolved only: the failure it recovered from. */
  last_failure?: string | null;
  flapping?: boolean;
  resolved_by?: string | null;
  at: string;
}

/** The context a channel's URL is sealed under: its owner. */
export const channelSealContext = (ownerId: number) => `notification_channel:owner:${ownerId}`;

const MAX_ATTEMPTS = 8;
const CLAIM_LIMIT = 50;
/** A claimed notification whose send has not been recorded by then is tried again: this, or
 * twice MONITOR_NOTIFY_TIMEOUT_MS if longer, so that no send still under way is claimed again
 * (and sent twice) by another instance. */
const IN_FLIGHT_MS = 60_000;

/** Slack reads `<!channel>`, `<https://...|label>` and `<@U123>` in a message's text as a
 * mention or a link; a check's message carries what the monitored database says (a value, an
 * error naming one), which anyone who can write a row there chooses. So the three characters
 * Slack gives meaning are escaped, as its formatting reference asks: the text is shown, never
 * acted on. */
const slackText = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

export function bodyFor(kind: ChannelKind, payload: NotificationPayload): unknown {
  return kind === "slack" ? { text: slackText(payload.text) } : payload;
}

export interface SendOptions {
  timeoutMs: number;
  /** WEBHOOK_ALLOW_PRIVATE: also connect to loopback, private and link-local addresses. */
  allowPrivate: boolean;
  /** The notification's own key, sent as X-Pulse-Notification: delivery is at least once, and a
   * receiver that sees a key again can drop the repeat. */
  notificationKey: string;
}

/**
 * One POST with a short timeout; throws with a reason on anything but a 2xx answer. Unless
 * private targets are allowed, it only ever connects to a public address: an address literal
 * is checked here, a name by the lookup of the connection itself (webhook-targets.ts).
 * Redirects are not followed (a 3xx is a failure), so they cannot lead elsewhere either.
 */
export async function sendNotification(kind: ChannelKind, url: string, payload: NotificationPayload, options: SendOptions): Promise<number> {
  const target = new URL(url);
  if (target.protocol !== "http:" && target.protocol !== "https:") throw new Error(`refused: ${TARGET_PROBLEMS.scheme}`);
  if (!options.allowPrivate && nonPublicLiteral(target)) throw new NonPublicTargetError();
  const body = JSON.stringify(bodyFor(kind, payload));
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<number>((resolve, reject) => {
    const req = send(target, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "user-agent": "pulse-monitoring",
        "x-pulse-notification": options.notificationKey,
      },
      lookup: webhookLookup(webhookResolver(options.timeoutMs), options.allowPrivate),
    });
    const timer = setTimeout(() => {
      const late = new SendTimeout(options.timeoutMs);
      // Settled here too: a request Node has already destroyed (see "close") ignores destroy().
      req.destroy(late);
      reject(late);
    }, options.timeoutMs);
    // An answer switching protocols (101) is no answer to a POST: Node hands over the socket
    // here, and without a listener destroys it, with neither a response nor an error.
    req.on("upgrade", (res, socket) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`the endpoint answered HTTP ${res.statusCode ?? 101}`));
    });
    // Whatever else ends the request without a response or an error settles it too: a send
    // that never settles held the one delivery at a time, and every user's notifications.
    req.on("close", () => {
      clearTimeout(timer);
      reject(new Error("could not reach the endpoint (closed without an answer)"));
    });
    req.on("response", (res) => {
      clearTimeout(timer);
      // The answer's body is not read: an endpoint streaming forever must not hold us.
      res.destroy();
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) resolve(status);
      else reject(new Error(`the endpoint answered HTTP ${status}`));
    });
    req.on("error", (err) => {
      clearTimeout(timer);
      if (err instanceof SendTimeout || err instanceof NonPublicTargetError) reject(err);
      else reject(new Error(`could not reach the endpoint (${causeOf(err)})`));
    });
    req.end(body);
  });
}

class SendTimeout extends Error {
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = "SendTimeout";
  }
}

function causeOf(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  return e?.code ?? e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}

export const sendOptions = (deps: Deps, notificationKey: string): SendOptions => ({
  notificationKey,
  timeoutMs: deps.config.monitor.notifyTimeoutMs,
  allowPrivate: deps.config.monitor.webhookAllowPrivate,
});

export const channelUrl = (deps: Deps, channel: NotificationChannelRow) =>
  openSecret(channel.urlSealed, openingKeys(deps.config), channelSealContext(channel.ownerId));

const retryDelayMs = (attempts: number) => Math.min(30_000 * 2 ** (attempts - 1), 3_600_000);

/** Each app's deliveries (keyed by its monitoring runtime). */
const deliveries = new WeakMap<object, OneAtATime<number>>();

/** Starts sending what is due without waiting for it: a run or an alert action answers its
 * caller at once, not after the slowest webhook of everyone's due notifications (each send
 * may take MONITOR_NOTIFY_TIMEOUT_MS, and one asked for during a delivery waits for it to
 * end). A shutdown (serve.ts) and `pulse check` wait for what was started (deliveriesSettled). */
export function deliverSoon(deps: Deps): void {
  deliverDueNotifications(deps).catch((err: unknown) => deps.logger.error({ err }, "delivering notifications failed"));
}

/** Resolves once the deliveries started or asked for in this app have ended. */
export function deliveriesSettled(deps: Deps): Promise<void> {
  return deliveries.get(deps.monitoring)?.settled() ?? Promise.resolve();
}

/** Sends what is due in the outbox; returns how many were sent. Failures are logged (never
 * the URL: it holds the channel's token) and retried later, up to MAX_ATTEMPTS. One delivery at
 * a time per app: every run and alert action asks for one, and each sends up to CLAIM_LIMIT
 * requests at once, so actions at once must not multiply them. Asked during one, the answer is
 * the next, which starts when it ends and serves every such call. */
export function deliverDueNotifications(deps: Deps): Promise<number> {
  let one = deliveries.get(deps.monitoring);
  if (!one) deliveries.set(deps.monitoring, (one = new OneAtATime()));
  return one.run(() => deliverOnce(deps));
}

async function deliverOnce(deps: Deps): Promise<number> {
  const now = deps.monitoring.now();
  const claimed = await claimDueNotifications(deps.store.db, {
    now: new Date(now),
    retryAt: new Date(now + Math.max(IN_FLIGHT_MS, 2 * deps.config.monitor.notifyTimeoutMs)),
    limit: CLAIM_LIMIT,
  });
  if (claimed.length === 0) return 0;
  const channels = new Map((await channelsByIds(deps.store.db, [...new Set(claimed.map((n) => n.channelId))])).map((c) => [c.id, c]));
  let sent = 0;
  await Promise.all(
    claimed.map(async (entry) => {
      const channel = channels.get(entry.channelId);
      if (!channel) return; // deleted meanwhile: the cascade removes the entry too
      if (!channel.enabled) {
        // Disabled after this was queued: its owner asked for silence, now rather than later.
        await markNotificationFailed(deps.store.db, entry.id, "channel disabled", null);
        return;
      }
      const payload = entry.payload as unknown as NotificationPayload;
      // Never the URL: it holds the channel's token.
      const fields = { channel_id: channel.id, channel_kind: channel.kind, alert_id: entry.alertId, event: payload.event, notification: entry.dedupKey, attempt: entry.attempts };
      const clockStart = performance.now();
      const durationMs = () => Math.round(performance.now() - clockStart);
      try {
        await sendNotification(channel.kind, channelUrl(deps, channel), payload, sendOptions(deps, entry.dedupKey));
      } catch (err) {
        const reason = (err as Error).message;
        const final = entry.attempts >= MAX_ATTEMPTS;
        deps.logger.warn({ ...fields, duration_ms: durationMs(), final, reason }, "monitoring notification not delivered");
        await markNotificationFailed(
          deps.store.db,
          entry.id,
          reason,
          final ? null : new Date(deps.monitoring.now() + retryDelayMs(entry.attempts)),
        ).catch((e: unknown) => deps.logger.error({ err: e }, "recording a failed notification failed"));
        return;
      }
      deps.logger.info({ ...fields, duration_ms: durationMs() }, "monitoring notification sent");
      sent += 1;
      // Delivered: only the record of it can fail now. Recorded as failed, it was sent again at
      // its next retry; left claimed, it is sent again only once the claim runs out
      // (see IN_FLIGHT_MS), with the same X-Pulse-Notification.
      await markNotificationSent(deps.store.db, entry.id, new Date(deps.monitoring.now())).catch((e: unknown) =>
        deps.logger.error({ ...fields, err: e }, "recording a sent notification failed"),
      );
    }),
  );
  return sent;
}
