// Redis failing in the ways a network does, not by stopping: a connection that goes silent (a
// NAT or load balancer dropping it, a paused VM, a failover that leaves the old socket open),
// and a reconnect whose re-subscription is not answered in time. The process must survive and
// recover by itself, without a restart.

import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { startPrivateRedis } from "../support/private-redis.js";
import { startPulse, type RunningPulse } from "../support/pulse-process.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

/** Waits (30 s at most) for `check` to answer true. */
const until = (what: string, check: () => Promise<boolean>) =>
  vi.waitFor(async () => expect(await check().catch(() => false), what).toBe(true), { timeout: 30_000, interval: 100 });

describe("a server whose Redis connections go silent", () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let relay: TcpRelay;
  let server: RunningPulse;
  let raw: Redis;

  /** Running, and no promise rejected unhandled (which main.ts logs instead of exiting). */
  const alive = () => server.child.exitCode === null && server.child.signalCode === null && !server.stdout().includes("unhandled promise rejection");
  const healthy = async () => (await fetch(`${server.base}/health`, { signal: AbortSignal.timeout(5_000) })).status === 200;
  /** Whether this server's subscriber listens to session changes again. */
  const subscribed = async () => Number(((await raw.pubsub("NUMSUB", "pulse:session-changes")) as (string | number)[])[1]) >= 1;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    relay = await startTcpRelay({ host: "127.0.0.1", port: redis.port });
    server = await startPulse({ REDIS_URL: `redis://127.0.0.1:${relay.port}` });
    raw = new Redis(redis.url);
  }, 120_000);

  afterAll(async () => {
    raw?.disconnect();
    await server?.stop();
    await relay?.close();
    await redis?.stop();
  });

  it("survives a reconnect whose re-subscription is not answered, and subscribes again once Redis answers", async () => {
    expect(await subscribed()).toBe(true);
    relay.freezeOn("subscribe");
    relay.cut();
    // Long enough for several re-subscriptions to time out.
    await new Promise((r) => setTimeout(r, 8_000));
    expect(alive(), server.stderr()).toBe(true);
    relay.freezeOn(null);
    await until("the subscription to return", subscribed);
    await until("/health to be healthy", healthy);
    expect(alive(), server.stderr()).toBe(true);
  }, 60_000);

  it("listens again after a while of swallowed connections ended by a cut (its subscriber was left 'ready' without a socket)", async () => {
    await until("the subscription to be there", subscribed);
    relay.blackhole(true);
    relay.freeze();
    // Long enough for the silent subscriber to be found out and for reconnects to be swallowed.
    await new Promise((r) => setTimeout(r, 15_000));
    relay.cut();
    relay.blackhole(false);
    await until("the subscription to return", subscribed);
    await until("/health to be healthy", healthy);
    expect(alive(), server.stderr()).toBe(true);
  }, 90_000);

  it("reconnects by itself when its connections go silent", async () => {
    expect(await healthy()).toBe(true);
    relay.freeze();
    // A silent connection answers nothing: found out, dropped and replaced, since connections
    // opened from now on are relayed again.
    await until("/health to be healthy on new connections", healthy);
    await until("the subscription to return", subscribed);
    expect(relay.accepted).toBeGreaterThan(2);
    expect(alive(), server.stderr()).toBe(true);
  }, 60_000);
});
