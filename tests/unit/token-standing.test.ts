// The revocation cache behind every authenticated request: what it answers without the store,
// when it asks again, and what the news from another instance makes it forget.

import { describe, expect, it } from "vitest";

import { createTokenStanding } from "../../src/auth/token-standing.js";
import type { TokenClaims } from "../../src/auth/tokens.js";
import { createMemorySessionStore } from "../../src/sessions/memory.js";
import type { SessionStore } from "../../src/sessions/types.js";
import type { StoredStanding } from "../../src/store/revocations.js";

const MAX_AGE_MS = 10_000;

/** A standing over a store held in `world`, with a clock moved by hand; `reads` counts the
 * store's reads. */
async function setup(sessions: SessionStore = createMemorySessionStore()) {
  const world = { users: new Map<number, number>([[1, 0]]), revoked: new Set<string>() };
  let clock = 1_000_000;
  let reads = 0;
  let gate: Promise<void> | undefined;
  const read = async (userId: number, sessionId: string): Promise<StoredStanding | null> => {
    reads++;
    const generation = world.users.get(userId);
    const sessionRevoked = world.revoked.has(sessionId);
    await gate;
    return generation === undefined ? null : { generation, sessionRevoked };
  };
  const standing = await createTokenStanding({ maxAgeMs: MAX_AGE_MS, read, sessions, onAnnounceError: () => undefined, now: () => clock });
  return {
    standing,
    world,
    sessions,
    reads: () => reads,
    tick: (ms: number) => (clock += ms),
    now: () => clock,
    /** Holds reads (after they looked at `world`) until the returned function is called. */
    holdReads() {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

const token = (over: Partial<TokenClaims> = {}): TokenClaims => ({ userId: 1, sessionId: "s-1", generation: 0, ...over });

describe("createTokenStanding", () => {
  it("asks the store about a token it does not know, then answers from memory", async () => {
    const t = await setup();
    expect(t.standing.cached(token(), t.now())).toBeUndefined();
    expect(await t.standing.check(token())).toBe(true);
    expect(t.standing.cached(token(), t.now())).toBe(true);
    expect(t.reads()).toBe(1);
  });

  it("keeps the tokens in use when full, however many others pass", async () => {
    const t = await setup();
    expect(await t.standing.check(token())).toBe(true);
    for (let i = 1; i <= 100_000; i++) {
      await t.standing.check(token({ sessionId: `other-${i}` }));
      if (i % 10_000 === 0) expect(t.standing.cached(token(), t.now()), `after ${i} other sessions`).toBe(true);
    }
    expect(t.reads()).toBe(1 + 100_000);
  });

  it("asks again once its answer is older than the age limit", async () => {
    const t = await setup();
    await t.standing.check(token());
    t.tick(MAX_AGE_MS - 1);
    expect(t.standing.cached(token(), t.now())).toBe(true);
    t.tick(1);
    expect(t.standing.cached(token(), t.now())).toBeUndefined();
  });

  it.each([
    ["a logged-out session", (w: Awaited<ReturnType<typeof setup>>["world"]) => w.revoked.add("s-1")],
    ["a user whose generation was raised", (w: Awaited<ReturnType<typeof setup>>["world"]) => w.users.set(1, 1)],
    ["a deleted user", (w: Awaited<ReturnType<typeof setup>>["world"]) => w.users.delete(1)],
  ])("refuses %s, and keeps refusing from memory past the age limit", async (_, revoke) => {
    const t = await setup();
    revoke(t.world);
    expect(await t.standing.check(token())).toBe(false);
    t.tick(MAX_AGE_MS * 100);
    expect(t.standing.cached(token(), t.now())).toBe(false);
  });

  it("asks the store about a token newer than the generation it remembers", async () => {
    const t = await setup();
    await t.standing.check(token());
    t.world.users.set(1, 1); // a password change it was not told of
    const fresh = token({ sessionId: "s-2", generation: 1 });
    expect(t.standing.cached(fresh, t.now())).toBeUndefined();
    expect(await t.standing.check(fresh)).toBe(true);
    // What it read also refuses the older token at once.
    expect(t.standing.cached(token(), t.now())).toBe(false);
  });

  it("forgets what a revocation names, on this instance and on another one told through the session store", async () => {
    const sessions = createMemorySessionStore();
    const here = await setup(sessions);
    const there = await setup(sessions);
    for (const t of [here, there]) await t.standing.check(token());
    here.world.revoked.add("s-1");
    there.world.revoked.add("s-1");
    await here.standing.revoked({ sessionId: "s-1" });
    for (const t of [here, there]) {
      expect(t.standing.cached(token(), t.now())).toBeUndefined();
      expect(await t.standing.check(token())).toBe(false);
    }
  });

  it("does not remember a read that overlapped a revocation", async () => {
    const t = await setup();
    const release = t.holdReads();
    const reading = t.standing.check(token());
    t.world.users.set(1, 1);
    await t.standing.revoked({ userId: 1 });
    release();
    // The request that raced the revocation may pass; nothing after it may.
    expect(await reading).toBe(true);
    expect(t.standing.cached(token(), t.now())).toBeUndefined();
    expect(await t.standing.check(token())).toBe(false);
  });

  it("does not let a check after a revocation join a read begun before it", async () => {
    const t = await setup();
    const release = t.holdReads();
    const before = t.standing.check(token());
    t.world.revoked.add("s-1");
    await t.standing.revoked({ sessionId: "s-1" });
    const after = t.standing.check(token());
    release();
    expect(await before).toBe(true);
    expect(await after).toBe(false);
  });

  it("shares one read among concurrent checks of a session", async () => {
    const t = await setup();
    const release = t.holdReads();
    const checks = [t.standing.check(token()), t.standing.check(token()), t.standing.check(token())];
    release();
    expect(await Promise.all(checks)).toEqual([true, true, true]);
    expect(t.reads()).toBe(1);
  });
});
