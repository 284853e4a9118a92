// Sending notifications: a generic webhook gets the JSON payload, a Slack incoming webhook
// gets `{text}`. Delivery drains the outbox (sent_notifications): a failed send is retried
// on a later tick with backoff, and a sent one is never sent again.

import { openSecret } from "../auth/secrets.js";
import type { Deps } from "../deps.js";
import {
  claimDueNotifications,
  markNotificationFailed,
  markNotificationSent,
} from "../store/monitoring-alerts.js";
import { channelsByIds } from "../store/monitoring-channels.js";
import type { NotificationChannelRow } from "../store/schema.js";

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
  detail?: string | null;
  flapping?: boolean;
  resolved_by?: string | null;
  at: string;
}

/** The context a channel's URL is sealed under: its owner. */
export const channelSealContext = (ownerId: number) => `notification_channel:owner:${ownerId}`;

const MAX_ATTEMPTS = 8;
const CLAIM_LIMIT = 50;
/** A claimed notification whose send has not been recorded by then is tried again. */
const IN_FLIGHT_MS = 60_000;

export function bodyFor(kind: ChannelKind, payload: NotificationPayload): unknown {
  return kind === "slack" ? { text: payload.text } : payload;
}

/** One POST with a short timeout; throws with a reason on anything but a 2xx answer. */
export async function sendNotification(kind: ChannelKind, url: string, payload: NotificationPayload, timeoutMs: number): Promise<number> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "pulse-monitoring" },
      body: JSON.stringify(bodyFor(kind, payload)),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "error",
    });
  } catch (err) {
    const name = (err as Error)?.name;
    throw new Error(name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : `could not reach the endpoint (${causeOf(err)})`);
  }
  await res.body?.cancel().catch(() => {});
  if (res.status < 200 || res.status >= 300) throw new Error(`the endpoint answered HTTP ${res.status}`);
  return res.status;
}

function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
}

export const channelUrl = (deps: Deps, channel: NotificationChannelRow) =>
  openSecret(channel.urlSealed, deps.config.secretsKey, channelSealContext(channel.ownerId));

const retryDelayMs = (attempts: number) => Math.min(30_000 * 2 ** (attempts - 1), 3_600_000);

/** Sends what is due in the outbox; returns how many were sent. Failures are logged (never
 * the URL: it holds the channel's token) and retried later, up to MAX_ATTEMPTS. */
export async function deliverDueNotifications(deps: Deps): Promise<number> {
  const now = deps.monitoring.now();
  const claimed = await claimDueNotifications(deps.store.db, {
    now: new Date(now),
    retryAt: new Date(now + IN_FLIGHT_MS),
    limit: CLAIM_LIMIT,
  });
  if (claimed.length === 0) return 0;
  const channels = new Map((await channelsByIds(deps.store.db, [...new Set(claimed.map((n) => n.channelId))])).map((c) => [c.id, c]));
  let sent = 0;
  await Promise.all(
    claimed.map(async (entry) => {
      const channel = channels.get(entry.channelId);
      if (!channel) return; // deleted meanwhile: the cascade removes the entry too
      try {
        await sendNotification(channel.kind, channelUrl(deps, channel), entry.payload as unknown as NotificationPayload, deps.config.monitor.notifyTimeoutMs);
        await markNotificationSent(deps.store.db, entry.id, new Date(deps.monitoring.now()));
        sent += 1;
      } catch (err) {
        const reason = (err as Error).message;
        const final = entry.attempts >= MAX_ATTEMPTS;
        deps.logger.warn({ channel_id: channel.id, notification: entry.dedupKey, attempt: entry.attempts, final, reason }, "notification not delivered");
        await markNotificationFailed(
          deps.store.db,
          entry.id,
          reason,
          final ? null : new Date(deps.monitoring.now() + retryDelayMs(entry.attempts)),
        ).catch((e: unknown) => deps.logger.error({ err: e }, "recording a failed notification failed"));
      }
    }),
  );
  return sent;
}
