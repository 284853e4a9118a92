// The signal of work a request starts on a customer database: aborted when the client hangs
// up (query_cancelled), or with a 401 as its reason when the request's credential is revoked
// while the work goes on (src/auth/revocation-watch.ts), so that an /ask, a manual run or a
// save's dry runs send no statement after a logout, a password change or a key's deletion.

import type { HttpBindings } from "@hono/node-server";
import type { Context } from "hono";
import { setMaxListeners } from "node:events";

import type { UnknownKeyGate } from "../auth/api-keys.js";
import { revokedError, type Stoppable, type WatchedCredential } from "../auth/revocation-watch.js";
import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";
import { bearerToken } from "./auth.js";
import type { AppEnv } from "./context.js";

type StandingDeps = Pick<Deps, "revocations" | "tokens" | "apiKeys" | "shuttingDown">;

/** A key that authenticated this request: the store knew it, so its re-reading is not counted
 * among a client's unknown keys. */
const KNOWN_KEY: UnknownKeyGate = { admit: async () => undefined, refund: async () => undefined };

/** The request's credential, and how to ask whether it still stands: from the caches, which
 * a revocation concerning it has emptied, else from the store. */
function credentialOf(c: Context<AppEnv>, deps: StandingDeps): WatchedCredential {
  const auth = c.get("auth");
  if (auth.kind === "login") {
    return { userId: auth.userId, sessionId: auth.sessionId, keyId: null, stands: async () => deps.tokens.cached(auth, Date.now()) ?? deps.tokens.check(auth) };
  }
  // The key itself is only in the request that sent it: the verifier knows keys by hash.
  const secret = bearerToken(c.req.header("authorization") ?? "") ?? "";
  return {
    userId: auth.userId,
    sessionId: auth.sessionId,
    keyId: auth.keyId,
    stands: async () => {
      if (deps.apiKeys.cached(secret, Date.now())) return true;
      return deps.apiKeys.verify(secret, KNOWN_KEY).then(
        () => true,
        (err: unknown) => {
          if (err instanceof DomainError && err.code === "unauthorized") return false;
          throw err;
        },
      );
    },
  };
}

/** Aborts `work` (a 401 its reason) once the request's credential is revoked, until the
 * returned function is called. A revocation heard of since the request was let in may have been
 * its own, before anything watched: then the credential is asked about first (401 if it went).
 * A store that cannot answer leaves it standing, as the watch does. */
export async function watchStanding(c: Context<AppEnv>, deps: StandingDeps, work: Stoppable): Promise<() => void> {
  const credential = credentialOf(c, deps);
  const unwatch = deps.revocations.watch(credential, work);
  if (deps.revocations.seen !== c.get("revocationsSeen") && !(await credential.stands().catch(() => true))) {
    unwatch();
    throw revokedError(credential);
  }
  return unwatch;
}

/** deps.shuttingDown: every request under way listens to its signal (followStops), so it has no
 * listener bound; past Node's default of 10 a busy instance warned of a leak that is not one. */
export function shutdownController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/** Aborts `work` with the reason of whichever comes first, the client hanging up or the
 * instance stopping (503 shutting_down), until the returned function is called. */
export function followStops(c: Context<AppEnv>, deps: Pick<Deps, "shuttingDown">, work: Stoppable): () => void {
  const unfollow = [onHangUp(c, work), onAbort(deps.shuttingDown.signal, work)];
  return () => {
    for (const stop of unfollow) stop();
  };
}

function onAbort(signal: AbortSignal, work: Stoppable): () => void {
  const stop = () => work.abort(signal.reason);
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
  return () => signal.removeEventListener("abort", stop);
}

/** What a stopped statement hears when its client went away (cancelledError makes it
 * query_cancelled), as @hono/node-server says it. */
const HUNG_UP = "Client connection prematurely closed.";

/** Aborts `work` when the client closes the connection before the response is written: heard
 * from Node's response, as @hono/node-server hears it for the request's signal, without reading
 * that signal, which made each request an AbortController of its own (2-3 µs of CPU, and kept
 * until a full collection). Without a Node response (app.request() in tests), the signal. */
function onHangUp(c: Context<AppEnv>, work: Stoppable): () => void {
  const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
  if (!outgoing) return onAbort(c.req.raw.signal, work);
  const closed = () => {
    if (!outgoing.writableFinished) work.abort(HUNG_UP);
  };
  if (outgoing.destroyed) {
    closed();
    return () => undefined;
  }
  outgoing.once("close", closed);
  return () => outgoing.off("close", closed);
}

/** Runs `work` with a signal aborted when the client hangs up, the credential is revoked, or
 * the instance stops (its reason then 503 shutting_down). */
export function whileStanding<T>(c: Context<AppEnv>, deps: StandingDeps, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  return stoppingWhen(c, deps, controller, () => work(controller.signal));
}

/** Runs `work`, aborting `stoppable` when whileStanding would abort its signal: for work that
 * has a way to stop of its own, which spares a request an AbortSignal (on Node 20 each costs
 * about 3 µs of CPU and lives until a full collection: bench/RESULTS.md, issue 13). */
export async function stoppingWhen<T>(c: Context<AppEnv>, deps: StandingDeps, stoppable: Stoppable, work: () => Promise<T>): Promise<T> {
  const unfollow = followStops(c, deps, stoppable);
  let unwatch: (() => void) | undefined;
  try {
    unwatch = await watchStanding(c, deps, stoppable);
    return await work();
  } finally {
    unwatch?.();
    unfollow();
  }
}
