// API keys: what one looks like, its stored hash, and the per-process cache that verifies one
// on every request. The metadata store is the truth; revocations (deleting a key, deleting its
// user) reach every instance through the token revocation announcements (token-standing.ts),
// and the cache's age limit bounds an instance that missed them.

import { createHash, randomBytes } from "node:crypto";

import { createLRU } from "lru.min";

import { DomainError } from "../errors.js";
import type { ApiKeyRow } from "../store/schema.js";
import type { Grant } from "./grants.js";
import type { Revocation } from "./token-standing.js";

/** Every key starts with this, so logs, people and secret scanners recognise one. */
export const API_KEY_PREFIX = "pulse_";
/** 32 random bytes in base64url. */
const SECRET_CHARS = 43;
const KEY_SHAPE = /^pulse_[A-Za-z0-9_-]{43}$/;
/** What of a key is kept in clear to recognise it: the prefix and a few characters each side. */
const SHOWN_START = API_KEY_PREFIX.length + 4;
const SHOWN_END = 4;
/** Each cache below drops its least recently used entry past this: keys in use stay cached
 * however many others (or made-up ones) pass. */
const MAX_ENTRIES = 10_000;
/** last_used_at is written at most this often per key and instance: it only has to be roughly right. */
const MARK_USED_EVERY_MS = 60_000;

/** The caller of a request authenticated by an API key. Each key works on a database session
 * of its own (`sessionId`), so what a login's session does (connect_db, /query, /ask and its
 * conversations) works for a key alike, without reaching any session of its user's logins. */
export interface KeyAuth {
  kind: "key";
  userId: number;
  keyId: number;
  /** `key:<id>`: the key's own database session. */
  sessionId: string;
  /** What logs may show of the key. */
  prefix: string;
  /** Epoch milliseconds; null: never expires. */
  expiresAt: number | null;
}

export interface VerifiedKey {
  auth: Readonly<KeyAuth>;
  grant: Grant;
}

export interface NewKeySecret {
  secret: string;
  secretHash: string;
  prefix: string;
  lastFour: string;
}

export const hashApiKey = (secret: string): string => createHash("sha256").update(secret).digest("hex");

export const looksLikeApiKey = (bearer: string): boolean => bearer.startsWith(API_KEY_PREFIX);

export const keySessionId = (keyId: number): string => `key:${keyId}`;

export function newKeySecret(): NewKeySecret {
  const secret = API_KEY_PREFIX + randomBytes(32).toString("base64url");
  return { secret, secretHash: hashApiKey(secret), prefix: secret.slice(0, SHOWN_START), lastFour: secret.slice(-SHOWN_END) };
}

export function grantOf(row: Pick<ApiKeyRow, "id" | "scopes" | "connectionIds">): Grant {
  return Object.freeze({ scopes: new Set(row.scopes), connectionIds: row.connectionIds ? new Set(row.connectionIds) : "all", apiKeyId: row.id });
}

/** Bounds the store reads a client can cause with keys the store does not know (random guesses
 * cost one read each): `admit` counts the key as unknown before the read, and refuses a client
 * past its limit; `refund` gives the count back when the store knew the key (or did not
 * answer). Counted first, so keys sent at once cannot all pass a count not yet raised. */
export interface UnknownKeyGate {
  admit(): Promise<void>;
  refund(): Promise<void>;
}

export interface ApiKeyVerifier {
  /** From the cache, without a promise: the key when it was verified less than the age limit
   * ago and has not expired since; undefined when `verify` must ask the store. */
  cached(secret: string, now: number): VerifiedKey | undefined;
  /** Asks the store, and caches the answer; throws 401 for a key that is unknown, revoked or
   * expired. A key of the right shape that is in no cache passes `gate` before the read. */
  verify(secret: string, gate: UnknownKeyGate): Promise<VerifiedKey>;
  /** Notes a use of the key: its last_used_at, written now and then, never on the request's path. */
  used(key: VerifiedKey, now: number): void;
  /** Forgets what a revocation concerns, or every key verified (given to the token standing as
   * `alsoForget`). */
  forget(revocation: Revocation | "everything"): void;
}

export interface ApiKeyVerifierOptions {
  /** How long a verified key is trusted without asking the store again. */
  maxAgeMs: number;
  read: (secretHash: string) => Promise<ApiKeyRow | null>;
  markUsed: (keyId: number) => Promise<void>;
  onMarkError: (err: unknown) => void;
  /** Whether revocations announced now reach this instance (SessionStore.listening); while
   * not, every request asks the store. Default: always. */
  listening?: () => boolean;
  now?: () => number;
}

interface Entry {
  key: VerifiedKey;
  at: number;
}

export function createApiKeyVerifier(options: ApiKeyVerifierOptions): ApiKeyVerifier {
  const now = options.now ?? Date.now;
  const listening = options.listening ?? (() => true);
  /** By the key's hash: the secrets themselves are not kept. */
  const entries = createLRU<string, Entry>({ max: MAX_ENTRIES });
  const markedAt = createLRU<number, number>({ max: MAX_ENTRIES });
  /** Hashes the store did not know (never made, or revoked): a secret is random, so one refused
   * stays refused, and a client retrying a revoked key costs no read per request. */
  const unknown = createLRU<string, true>({ max: MAX_ENTRIES });
  /** Revocations seen so far: a read that overlapped one may have read the old state. */
  let revocationsSeen = 0;

  const refused = (why: string) => new DomainError("unauthorized", why);

  const fresh = (entry: Entry | undefined, at: number): VerifiedKey | undefined => {
    if (!entry || at - entry.at >= options.maxAgeMs) return undefined;
    const expiresAt = entry.key.auth.expiresAt;
    return expiresAt !== null && expiresAt <= at ? undefined : entry.key;
  };

  /** Reads of the store under way, by the key's hash. */
  const readings = new Map<string, Promise<VerifiedKey>>();
  /** Hashes the store knew when last asked here: their checks skip the unknown-key gate, so a
   * client's known keys are never refused for the made-up ones sent from its address. (Only the
   * gate: whether one still stands is the store's answer, asked as for any key.) */
  const proven = createLRU<string, true>({ max: MAX_ENTRIES });

  const readKey = async (secretHash: string, gate: UnknownKeyGate): Promise<VerifiedKey> => {
    const gated = !proven.get(secretHash);
    if (gated) await gate.admit();
    const giveBack = () => (gated ? gate.refund() : Promise.resolve());
    const seen = revocationsSeen;
    const row = await options.read(secretHash).catch(async (err: unknown) => {
      await giveBack();
      throw err;
    });
    if (!row) {
      unknown.set(secretHash, true);
      proven.delete(secretHash);
      throw refused("Invalid API key: unknown or revoked");
    }
    await giveBack();
    proven.set(secretHash, true);
    const at = now();
    if (row.expiresAt && row.expiresAt.getTime() <= at) throw refused("API key has expired; create a new one");
    const key: VerifiedKey = {
      auth: Object.freeze({
        kind: "key",
        userId: row.ownerId,
        keyId: row.id,
        sessionId: keySessionId(row.id),
        prefix: row.prefix,
        expiresAt: row.expiresAt?.getTime() ?? null,
      }),
      grant: grantOf(row),
    };
    if (seen === revocationsSeen && listening()) entries.set(secretHash, { key, at });
    return key;
  };

  return {
    cached(secret, at) {
      if (!listening()) return undefined;
      return fresh(entries.get(hashApiKey(secret)), at);
    },

    async verify(secret, gate) {
      if (secret.length !== API_KEY_PREFIX.length + SECRET_CHARS || !KEY_SHAPE.test(secret)) throw refused("Invalid API key");
      const secretHash = hashApiKey(secret);
      if (unknown.get(secretHash)) throw refused("Invalid API key: unknown or revoked");
      // Checks of one key at once share one read, and count (at most) once.
      let reading = readings.get(secretHash);
      if (!reading) {
        const pending: Promise<VerifiedKey> = readKey(secretHash, gate).finally(() => {
          if (readings.get(secretHash) === pending) readings.delete(secretHash);
        });
        readings.set(secretHash, (reading = pending));
      }
      return reading;
    },

    used(key, at) {
      const { keyId } = key.auth;
      if (at - (markedAt.get(keyId) ?? 0) < MARK_USED_EVERY_MS) return;
      markedAt.set(keyId, at);
      options.markUsed(keyId).catch(options.onMarkError);
    },

    forget(revocation) {
      revocationsSeen++;
      // A check from now on must not join a read that may have seen the key before it went.
      readings.clear();
      if (revocation === "everything") {
        entries.clear();
        return;
      }
      const gone = (auth: KeyAuth) =>
        ("keyId" in revocation && auth.keyId === revocation.keyId) || ("userId" in revocation && auth.userId === revocation.userId);
      const goneHashes = [...entries.entries()].filter(([, entry]) => gone(entry.key.auth)).map(([hash]) => hash);
      for (const hash of goneHashes) entries.delete(hash);
    },
  };
}
