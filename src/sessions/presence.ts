// Which instances of a deployment are live, from a heartbeat in Redis: a sorted set of instance
// ids, each scored by when its announcement expires. Connection budgets divide by the count,
// which rises at once but falls only once the lower count has held for a whole expiry window:
// a Redis restarted without its data has the first instance to announce itself again count
// itself alone until the others' next heartbeats, and taking the whole budget meanwhile, while
// they take their shares, would have the deployment run more than the setting. So an instance
// that leaves is still counted for up to expiryMs, the side that keeps within the budget.

import type { Redis } from "ioredis";

import { newInstanceId } from "../instance-id.js";
import type { Presence } from "./types.js";

/** A key, so under the store's prefix: instances count those of their own deployment only. */
const INSTANCES_KEY = "instances";

export interface PresenceOptions {
  /** How often this instance renews its announcement and recounts. */
  heartbeatMs?: number;
  /** How long an announcement lasts unrenewed (an instance that dies without leaving stops
   * being announced after this), and how long a lower count must hold before it is used. */
  expiryMs?: number;
}

export function createRedisPresence(redis: Redis, options: PresenceOptions = {}) {
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const expiryMs = options.expiryMs ?? heartbeatMs * 3;
  const id = newInstanceId();
  const presence = { count: 1 };
  /** The counts heartbeats found, oldest first, from the newest one at least expiryMs old (kept
   * across an outage of any length: the count before it holds until a lower one has held). */
  const seen: { at: number; count: number }[] = [];
  const errorHandlers: ((err: unknown) => void)[] = [];
  let joined: Promise<Presence> | undefined;
  let beating: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let left = false;

  // One round trip. Scores are this instance's clock, so instances' clocks must agree to well
  // within expiryMs (NTP does). The key expires with its latest announcement (PEXPIRE NX gives
  // it a TTL, GT only lengthens it): stale ids are dropped only by a heartbeat, and the set of a
  // deployment whose instances all died, or that was moved to another REDIS_PREFIX, would
  // otherwise be kept for ever.
  const beat = async () => {
    const now = Date.now();
    try {
      const results = await redis
        .multi()
        .zadd(INSTANCES_KEY, now + expiryMs, id)
        .zremrangebyscore(INSTANCES_KEY, "-inf", now)
        .zcard(INSTANCES_KEY)
        .pexpire(INSTANCES_KEY, expiryMs, "NX")
        .pexpire(INSTANCES_KEY, expiryMs, "GT")
        .exec();
      const [err, count] = results?.[2] ?? [new Error("the heartbeat transaction was discarded"), null];
      if (err) throw err;
      seen.push({ at: now, count: Number(count) });
      while (seen.length > 1 && now - seen[1]!.at >= expiryMs) seen.shift();
      presence.count = Math.max(1, ...seen.map((s) => s.count));
    } catch (err) {
      for (const handler of errorHandlers) handler(err);
    }
  };
  const scheduleNext = () => {
    if (left) return;
    timer = setTimeout(() => (beating = beat().then(scheduleNext)), heartbeatMs);
    timer.unref();
  };

  return {
    join(onError?: (err: unknown) => void): Promise<Presence> {
      if (onError) errorHandlers.push(onError);
      joined ??= (beating = beat()).then(() => {
        scheduleNext();
        return presence;
      });
      return joined;
    },
    /** Stops the heartbeat and withdraws the announcement (best effort: unwithdrawn, it expires). */
    async leave(): Promise<void> {
      left = true;
      clearTimeout(timer);
      // A heartbeat in flight would otherwise announce this instance again after the ZREM.
      await beating;
      if (joined) await redis.zrem(INSTANCES_KEY, id).catch(() => undefined);
    },
  };
}
