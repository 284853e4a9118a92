// Whether a verified token still stands: its user exists, has not revoked all their tokens
// since it was issued (a password change raises their generation), and its session was not
// logged out. Asked on every authenticated request, so it answers from a per-process cache;
// the metadata store is the truth. Revocations are announced to every instance, which forget
// what they knew at once. An instance that cannot hear them (its subscription is down) asks the
// store every time, and forgets everything once it hears again; the cache's age limit bounds
// an instance that missed the news anyway (a message lost in flight).
// API keys are revoked through the same announcements (`alsoForget`: src/auth/api-keys.ts).

import { createLRU } from "lru.min";

import type { SessionStore } from "../sessions/types.js";
import type { StoredStanding } from "../store/revocations.js";
import type { TokenClaims } from "./tokens.js";

/** Where instances tell each other of revocations ("user:<id>", "session:<id>", "key:<id>"). */
const REVOCATIONS_CHANNEL = "token-revocations";
/** Users and sessions known, each: past it the least recently used is dropped, so those in use
 * stay known however many others pass. */
const MAX_ENTRIES = 100_000;

export type Revocation = { userId: number } | { sessionId: string } | { keyId: number };

export interface TokenStanding {
  /** From the cache, without a promise: true (stands), false (revoked), or undefined when the
   * store must be asked (`check`). */
  cached(claims: TokenClaims, now: number): boolean | undefined;
  /** Asks the store (concurrent asks about one session share a read), and caches the answer. */
  check(claims: TokenClaims): Promise<boolean>;
  /** Call once a revocation is committed to the store: forgets it here at once and tells the
   * other instances. Telling them is best effort (`onAnnounceError`); the age limit covers a
   * failure. */
  revoked(revocation: Revocation): Promise<void>;
}

export interface TokenStandingOptions {
  /** How long an answer that a token stands is trusted without asking the store again. */
  maxAgeMs: number;
  read: (userId: number, sessionId: string) => Promise<StoredStanding | null>;
  sessions: Pick<SessionStore, "publish" | "subscribe" | "listening" | "onSubscriptionGap">;
  onAnnounceError: (err: unknown) => void;
  /** Told of every revocation, this instance's and the others': another cache of credentials
   * (API keys) that must forget at once too. */
  alsoForget?: (revocation: Revocation | "everything") => void;
  now?: () => number;
}

/** Revocations are never undone (generations only grow, ids are not reused, a logged-out
 * session stays out), so what was seen revoked is kept without an age limit; only what was
 * seen standing goes stale. */
interface UserEntry {
  /** null: the user was deleted. */
  generation: number | null;
  at: number;
}
interface SessionEntry {
  revoked: boolean;
  at: number;
}

export async function createTokenStanding(options: TokenStandingOptions): Promise<TokenStanding> {
  const now = options.now ?? Date.now;
  const users = createLRU<number, UserEntry>({ max: MAX_ENTRIES });
  const sessions = createLRU<string, SessionEntry>({ max: MAX_ENTRIES });
  const reading = new Map<string, Promise<boolean>>();
  /** Revocations seen so far: a read that overlapped one may have read the old state. */
  let revocationsSeen = 0;

  const forget = (revocation: Revocation) => {
    revocationsSeen++;
    // A check from now on must not join a read that may have seen the state before.
    reading.clear();
    if ("userId" in revocation) users.delete(revocation.userId);
    else if ("sessionId" in revocation) sessions.delete(revocation.sessionId);
    options.alsoForget?.(revocation);
  };
  // Messages may have been missed: nothing known before (or learned during) the gap is kept.
  options.sessions.onSubscriptionGap(() => {
    revocationsSeen++;
    reading.clear();
    users.clear();
    sessions.clear();
    options.alsoForget?.("everything");
  });
  await options.sessions.subscribe(REVOCATIONS_CHANNEL, (message) => {
    const separator = message.indexOf(":");
    const [kind, id] = [message.slice(0, separator), message.slice(separator + 1)];
    if (kind === "user") forget({ userId: Number(id) });
    else if (kind === "session") forget({ sessionId: id });
    else if (kind === "key") forget({ keyId: Number(id) });
  });

  const cached = (claims: TokenClaims, at: number): boolean | undefined => {
    if (!options.sessions.listening()) return undefined;
    const user = users.get(claims.userId);
    const session = sessions.get(claims.sessionId);
    if (session?.revoked || (user && (user.generation === null || claims.generation < user.generation))) return false;
    if (!user || !session || user.generation !== claims.generation) return undefined;
    if (at - user.at >= options.maxAgeMs || at - session.at >= options.maxAgeMs) return undefined;
    return true;
  };

  const read = async (claims: TokenClaims): Promise<boolean> => {
    const seen = revocationsSeen;
    const stored = await options.read(claims.userId, claims.sessionId);
    if (seen === revocationsSeen && options.sessions.listening()) {
      const at = now();
      users.set(claims.userId, { generation: stored?.generation ?? null, at });
      sessions.set(claims.sessionId, { revoked: stored?.sessionRevoked ?? false, at });
    }
    return stored !== null && !stored.sessionRevoked && stored.generation === claims.generation;
  };

  return {
    cached,
    check(claims) {
      const joined = reading.get(claims.sessionId);
      if (joined) return joined;
      const pending: Promise<boolean> = read(claims).finally(() => {
        if (reading.get(claims.sessionId) === pending) reading.delete(claims.sessionId);
      });
      reading.set(claims.sessionId, pending);
      return pending;
    },
    async revoked(revocation) {
      forget(revocation);
      const message =
        "userId" in revocation ? `user:${revocation.userId}` : "keyId" in revocation ? `key:${revocation.keyId}` : `session:${revocation.sessionId}`;
      await options.sessions.publish(REVOCATIONS_CHANNEL, message).catch(options.onAnnounceError);
    },
  };
}
