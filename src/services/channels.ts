// Notification channel verbs behind /api/channels. A webhook URL is a credential (Slack's
// carries its token in the path): it is sealed at rest and only its origin is ever shown. It
// must point at a public address (monitoring/webhook-targets.ts).

import { randomUUID } from "node:crypto";

import { sealSecret } from "../auth/secrets.js";
import type { Deps } from "../deps.js";
import { DomainError, invalidFields, notFound } from "../errors.js";
import { channelSealContext, channelUrl, sendNotification, sendOptions, type ChannelKind } from "../monitoring/notifiers.js";
import { TARGET_PROBLEMS, webhookResolver, webhookTargetProblem } from "../monitoring/webhook-targets.js";
import { deleteChannel, getChannel, insertChannel, listChannels, updateChannel } from "../store/monitoring-channels.js";
import type { NotificationChannelRow } from "../store/schema.js";
import { insertWithinQuota } from "../store/quotas.js";
import { countTry } from "../rate-limits.js";

export interface ChannelInput {
  kind: ChannelKind;
  name?: string | undefined;
  url: string;
}

export interface PublicChannel {
  id: number;
  kind: ChannelKind;
  name: string;
  /** Scheme and host only: the rest of a webhook URL is its secret. */
  url_hint: string;
  enabled: boolean;
  created_at: string;
}

export const publicChannel = (row: NotificationChannelRow): PublicChannel => ({
  id: row.id,
  kind: row.kind,
  name: row.name,
  url_hint: row.urlHint,
  enabled: row.enabled,
  created_at: row.createdAt.toISOString(),
});

export const urlHint = (url: string) => {
  const u = new URL(url);
  return `${u.protocol}//${u.host}/…`;
};

/** Refuses (422) a URL notifications must not go to: not http(s), or a host that is not a
 * public address unless WEBHOOK_ALLOW_PRIVATE. Sending checks again: DNS answers change. */
export async function assertWebhookTarget(deps: Deps, url: string): Promise<void> {
  const problem = await webhookTargetProblem(url, { allowPrivate: deps.config.monitor.webhookAllowPrivate, resolve: webhookResolver(deps.config.monitor.notifyTimeoutMs) });
  if (problem !== null) throw invalidFields([{ path: "body.url", message: `refused: ${TARGET_PROBLEMS[problem]}` }]);
}

export async function addChannel(deps: Deps, ownerId: number, input: ChannelInput): Promise<PublicChannel> {
  await assertWebhookTarget(deps, input.url);
  const row = await insertWithinQuota(deps.store.db, deps.config.quotas, ownerId, "channels", (tx) =>
    insertChannel(tx, {
      ownerId,
      kind: input.kind,
      name: input.name ?? `${input.kind} ${new URL(input.url).host}`,
      urlSealed: sealSecret(input.url, deps.config.secretsKey, channelSealContext(ownerId)),
      urlHint: urlHint(input.url),
      enabled: true,
    }),
  );
  return publicChannel(row);
}

export async function listChannelsOf(deps: Deps, ownerId: number): Promise<PublicChannel[]> {
  return (await listChannels(deps.store.db, ownerId)).map(publicChannel);
}

export interface ChannelUpdate {
  name?: string | undefined;
  /** A disabled channel is sent nothing: no new notifications, and none still queued for it. */
  enabled?: boolean | undefined;
}

/** Renames, disables or enables one of the owner's channels (its URL stays as it is). */
export async function changeChannel(deps: Deps, ownerId: number, id: number, update: ChannelUpdate): Promise<PublicChannel> {
  const patch = { ...(update.name !== undefined && { name: update.name }), ...(update.enabled !== undefined && { enabled: update.enabled }) };
  const row = Object.keys(patch).length === 0 ? await getChannel(deps.store.db, ownerId, id) : await updateChannel(deps.store.db, ownerId, id, patch);
  if (!row) throw notFound("Notification channel");
  return publicChannel(row);
}

export async function removeChannel(deps: Deps, ownerId: number, id: number): Promise<void> {
  if (!(await deleteChannel(deps.store.db, ownerId, id))) throw notFound("Notification channel");
}

/** Test notifications a user may send per minute: each is a request to a URL of their choosing,
 * which Pulse must not be made to send without end. */
export const CHANNEL_TESTS_PER_MINUTE = 10;

/** Sends a test message now; a failure answers 400 with the reason (never the URL). */
export async function testChannel(deps: Deps, ownerId: number, id: number): Promise<{ ok: true; status_code: number }> {
  await countTry(deps, `channel-tests:user:${ownerId}`, { max: CHANNEL_TESTS_PER_MINUTE, windowSeconds: 60 }, `At most ${CHANNEL_TESTS_PER_MINUTE} test notifications per minute; try again shortly`);
  const row = await getChannel(deps.store.db, ownerId, id);
  if (!row) throw notFound("Notification channel");
  const at = new Date(deps.monitoring.now()).toISOString();
  try {
    const status = await sendNotification(
      row.kind,
      channelUrl(deps, row),
      { event: "test", text: `Pulse test notification for channel "${row.name}"`, at },
      // A key of its own, as every notification has: a receiver that drops repeats by it must
      // not take a second test for a repeat of the first.
      sendOptions(deps, `test:channel:${row.id}:${randomUUID()}`),
    );
    return { ok: true, status_code: status };
  } catch (err) {
    throw new DomainError("connection_failed", `Test notification not delivered: ${(err as Error).message}`);
  }
}
