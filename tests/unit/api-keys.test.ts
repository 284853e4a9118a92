// The API key cache behind every request made with a key: what it answers without the store,
// when it asks again, what a revocation makes it forget, and what it refuses unread.

import { describe, expect, it, vi } from "vitest";

import { createApiKeyVerifier, hashApiKey, newKeySecret, type UnknownKeyGate } from "../../src/auth/api-keys.js";
import type { ApiKeyRow } from "../../src/store/schema.js";

const MAX_AGE_MS = 10_000;
/** A gate that admits every client and counts nothing. */
const OPEN: UnknownKeyGate = { admit: async () => undefined, refund: async () => undefined };

function setup() {
  const rows = new Map<string, ApiKeyRow>();
  let clock = 1_000_000;
  let reads = 0;
  let gate: Promise<void> | undefined;
  const marked: number[] = [];
  const verifier = createApiKeyVerifier({
    maxAgeMs: MAX_AGE_MS,
    read: async (hash) => {
      reads++;
      const row = rows.get(hash) ?? null;
      await gate;
      return row;
    },
    markUsed: async (id) => void marked.push(id),
    onMarkError: () => undefined,
    now: () => clock,
  });
  let nextId = 1;
  const addKey = (over: Partial<ApiKeyRow> = {}) => {
    const { secret, secretHash, prefix, lastFour } = newKeySecret();
    const row: ApiKeyRow = {
      id: nextId++,
      ownerId: 7,
      name: "k",
      secretHash,
      prefix,
      lastFour,
      scopes: ["query"],
      connectionIds: null,
      expiresAt: null,
      lastUsedAt: null,
      createdAt: new Date(clock),
      ...over,
    };
    rows.set(secretHash, row);
    return { secret, row };
  };
  return {
    verifier,
    rows,
    marked,
    addKey,
    reads: () => reads,
    now: () => clock,
    tick: (ms: number) => (clock += ms),
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

describe("newKeySecret", () => {
  it("makes distinct pulse_ keys of 256 random bits, and keeps only their hash and ends", () => {
    const keys = Array.from({ length: 100 }, newKeySecret);
    expect(new Set(keys.map((k) => k.secret)).size).toBe(100);
    for (const k of keys) {
      expect(k.secret).toMatch(/^pulse_[A-Za-z0-9_-]{43}$/);
      expect(k.secretHash).toBe(hashApiKey(k.secret));
      expect(k.prefix).toBe(k.secret.slice(0, 10));
      expect(k.lastFour).toBe(k.secret.slice(-4));
    }
  });
});

describe("createApiKeyVerifier", () => {
  it("asks the store about a key it does not know, then answers from memory", async () => {
    const t = setup();
    const { secret, row } = t.addKey({ connectionIds: [3] });
    expect(t.verifier.cached(secret, t.now())).toBeUndefined();
    const key = await t.verifier.verify(secret, OPEN);
    expect(key.auth).toEqual({ kind: "key", userId: 7, keyId: row.id, sessionId: `key:${row.id}`, prefix: row.prefix, expiresAt: null });
    expect([...(key.grant.scopes as Set<string>)]).toEqual(["query"]);
    expect([...(key.grant.connectionIds as Set<number>)]).toEqual([3]);
    expect(t.verifier.cached(secret, t.now())).toBe(key);
    expect(t.reads()).toBe(1);
  });

  it("asks again once its answer is older than the age limit", async () => {
    const t = setup();
    const { secret } = t.addKey();
    await t.verifier.verify(secret, OPEN);
    t.tick(MAX_AGE_MS);
    expect(t.verifier.cached(secret, t.now())).toBeUndefined();
  });

  it("refuses unknown, malformed and expired keys with 401", async () => {
    const t = setup();
    const { secret } = t.addKey({ expiresAt: new Date(t.now() + 1000) });
    await t.verifier.verify(secret, OPEN);
    t.tick(1000);
    expect(t.verifier.cached(secret, t.now())).toBeUndefined();
    await expect(t.verifier.verify(secret, OPEN)).rejects.toMatchObject({ code: "unauthorized", message: expect.stringContaining("expired") });
    await expect(t.verifier.verify(newKeySecret().secret, OPEN)).rejects.toMatchObject({ code: "unauthorized" });
    const reads = t.reads();
    for (const bad of ["pulse_", "pulse_short", `pulse_${"!".repeat(43)}`, `pulse_${"a".repeat(44)}`]) {
      await expect(t.verifier.verify(bad, OPEN)).rejects.toMatchObject({ code: "unauthorized" });
    }
    expect(t.reads()).toBe(reads);
  });

  it("remembers a key the store did not know, so retrying it costs no read", async () => {
    const t = setup();
    const { secret } = newKeySecret();
    for (let i = 0; i < 3; i++) await expect(t.verifier.verify(secret, OPEN)).rejects.toMatchObject({ code: "unauthorized", message: expect.stringContaining("unknown or revoked") });
    expect(t.reads()).toBe(1);
  });

  it("keeps the keys in use when its caches are full, however many others pass", async () => {
    const t = setup();
    const used = t.addKey();
    const revoked = newKeySecret().secret;
    await t.verifier.verify(used.secret, OPEN);
    await expect(t.verifier.verify(revoked, OPEN)).rejects.toMatchObject({ code: "unauthorized" });
    for (let i = 1; i <= 10_000; i++) {
      await t.verifier.verify(t.addKey().secret, OPEN);
      await expect(t.verifier.verify(newKeySecret().secret, OPEN)).rejects.toMatchObject({ code: "unauthorized" });
      if (i % 1000 === 0) {
        expect(t.verifier.cached(used.secret, t.now()), `after ${i} other keys`).toBeDefined();
        await expect(t.verifier.verify(revoked, OPEN)).rejects.toMatchObject({ code: "unauthorized" });
      }
    }
    expect(t.reads(), "the revoked key was read once").toBe(2 + 2 * 10_000);
  });

  it("passes a well-formed key it does not know through the gate before the read, and gets the count back for a known key", async () => {
    const t = setup();
    const events: string[] = [];
    const gate: UnknownKeyGate = { admit: async () => void events.push(`admit@${t.reads()}`), refund: async () => void events.push(`refund@${t.reads()}`) };
    const { secret } = t.addKey();
    await t.verifier.verify(secret, gate);
    await expect(t.verifier.verify(newKeySecret().secret, gate)).rejects.toMatchObject({ code: "unauthorized" });
    expect(events).toEqual(["admit@0", "refund@1", "admit@1"]);
    await expect(t.verifier.verify("pulse_short", gate)).rejects.toMatchObject({ code: "unauthorized" });
    const refusing: UnknownKeyGate = { admit: () => Promise.reject(new Error("over the limit")), refund: async () => undefined };
    await expect(t.verifier.verify(newKeySecret().secret, refusing)).rejects.toThrow("over the limit");
    expect(t.reads()).toBe(2);
    expect(events).toHaveLength(3);
  });

  it("shares one read and one count among checks of one key at once", async () => {
    const t = setup();
    let admitted = 0;
    const gate: UnknownKeyGate = { admit: async () => void admitted++, refund: async () => undefined };
    const { secret } = t.addKey();
    const release = t.holdReads();
    const checks = Array.from({ length: 30 }, () => t.verifier.verify(secret, gate));
    await vi.waitFor(() => expect(t.reads()).toBe(1));
    release();
    expect(new Set(await Promise.all(checks)).size).toBe(1);
    expect([t.reads(), admitted]).toEqual([1, 1]);
  });

  it("lets a key the store knew skip the gate when it asks again, so made-up keys from its address never lock it out", async () => {
    const t = setup();
    const { secret } = t.addKey();
    await t.verifier.verify(secret, OPEN);
    t.tick(MAX_AGE_MS);
    const refusing: UnknownKeyGate = { admit: () => Promise.reject(new Error("over the limit")), refund: async () => undefined };
    await expect(t.verifier.verify(secret, refusing)).resolves.toBeDefined();
    expect(t.reads()).toBe(2);
  });

  it("forgets a revoked key and every key of a revoked user at once", async () => {
    const t = setup();
    const [one, two, other] = [t.addKey(), t.addKey(), t.addKey({ ownerId: 8 })];
    for (const k of [one, two, other]) await t.verifier.verify(k.secret, OPEN);
    t.verifier.forget({ keyId: one.row.id });
    expect(t.verifier.cached(one.secret, t.now())).toBeUndefined();
    expect(t.verifier.cached(two.secret, t.now())).toBeDefined();
    t.verifier.forget({ userId: 7 });
    expect(t.verifier.cached(two.secret, t.now())).toBeUndefined();
    expect(t.verifier.cached(other.secret, t.now())).toBeDefined();
  });

  it("does not cache a read that a revocation overlapped", async () => {
    const t = setup();
    const { secret, row } = t.addKey();
    const release = t.holdReads();
    const pending = t.verifier.verify(secret, OPEN);
    await vi.waitFor(() => expect(t.reads()).toBe(1));
    t.verifier.forget({ keyId: row.id });
    release();
    await pending;
    expect(t.verifier.cached(secret, t.now())).toBeUndefined();
  });

  it("does not let a check made after a revocation join a read that began before it", async () => {
    const t = setup();
    const { secret, row } = t.addKey();
    const release = t.holdReads();
    const before = t.verifier.verify(secret, OPEN);
    await vi.waitFor(() => expect(t.reads()).toBe(1)); // it has read the key as it stood
    t.rows.delete(row.secretHash);
    t.verifier.forget({ keyId: row.id });
    const after = t.verifier.verify(secret, OPEN);
    release();
    await expect(before).resolves.toBeDefined();
    await expect(after).rejects.toMatchObject({ code: "unauthorized" });
    expect(t.reads()).toBe(2);
  });

  it("records a key's use at most once a minute", async () => {
    const t = setup();
    const { secret, row } = t.addKey();
    const key = await t.verifier.verify(secret, OPEN);
    t.verifier.used(key, t.now());
    t.verifier.used(key, t.now() + 59_000);
    t.verifier.used(key, t.now() + 60_000);
    await Promise.resolve();
    expect(t.marked).toEqual([row.id, row.id]);
  });
});
