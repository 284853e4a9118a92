// Work under way on behalf of a credential, stopped when the credential is revoked. The HTTP
// edge checks a credential once, as its request arrives; an /ask, a manual run of a table's
// checks or a save's dry runs then send statement after statement for seconds or minutes. A
// revocation (a deleted key, a logout, a password change, a deleted user) aborts their signal
// as soon as this instance hears of it (token-standing.ts tells every instance), so that none
// of them sends a statement after. A statement already running is stopped at the database, as
// when its caller hangs up. A revocation heard of between a request's admission and the start of
// its watch is caught by `seen` (src/http/standing.ts).

import { DomainError } from "../errors.js";
import type { Revocation } from "./token-standing.js";

/** The credential some work runs for. */
export interface WatchedCredential {
  userId: number;
  sessionId: string;
  /** Null for a login. */
  keyId: number | null;
  /** Asks the metadata store whether it still stands, after a revocation that may concern it
   * (a user's: a password change leaves the user's keys and new tokens standing). */
  stands(): Promise<boolean>;
}

/** What a revocation stops: an AbortController, or a request's own way to stop its work (an MCP
 * call is cancelled through the SDK, whose own signal its tool already has: src/mcp/route.ts).
 * Stopped at most once that counts: later calls are ignored, as an AbortController's are. */
export interface Stoppable {
  abort(reason: unknown): void;
}

export interface RevocationWatch {
  /** Revocations heard of so far: a request notes it when let in, and work it starts after
   * more were heard asks whether its credential still stands (one may have been its own). */
  readonly seen: number;
  /** Aborts `work` (its reason a 401) once `credential` is revoked, until the returned
   * function is called. */
  watch(credential: WatchedCredential, work: Stoppable): () => void;
  /** Every revocation this instance hears of, its own and the others' (TokenStanding's
   * `alsoForget`); "everything" after announcements may have been missed. */
  revoked(revocation: Revocation | "everything"): void;
}

/** The 401 of a credential revoked: a key has no login to go back to. */
export const revokedError = (credential: { keyId: number | null }) =>
  new DomainError("unauthorized", credential.keyId === null ? "Token has been revoked; log in again" : "API key has been revoked; create a new one");

interface Watched {
  credential: WatchedCredential;
  work: Stoppable;
}

export function createRevocationWatch(onCheckError: (err: unknown) => void): RevocationWatch {
  const watched = new Set<Watched>();
  const stop = (entry: Watched) => {
    watched.delete(entry);
    entry.work.abort(revokedError(entry.credential));
  };
  // A store that cannot answer leaves the work running: nothing says the credential went.
  const recheck = (entry: Watched) =>
    void entry.credential.stands().then((stands) => {
      if (!stands) stop(entry);
    }, onCheckError);

  let seen = 0;
  return {
    get seen() {
      return seen;
    },
    watch(credential, work) {
      const entry = { credential, work };
      watched.add(entry);
      return () => void watched.delete(entry);
    },
    revoked(revocation) {
      seen++;
      for (const entry of [...watched]) {
        const { credential } = entry;
        if (revocation === "everything") recheck(entry);
        else if ("keyId" in revocation) {
          if (credential.keyId === revocation.keyId) stop(entry);
        } else if ("sessionId" in revocation) {
          if (credential.sessionId === revocation.sessionId) stop(entry);
        } else if (credential.userId === revocation.userId) recheck(entry);
      }
    },
  };
}
