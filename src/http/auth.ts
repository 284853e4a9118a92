// Bearer-token middleware, in front of every route but the public ones (src/app.ts): verifies
// the JWT or the API key (`pulse_...`), refuses it once revoked (logout, password change,
// deleted user, deleted key) or expired, sets what it allows (`grant`), and renews the
// session's TTL, so a session lives 24 h after its last authenticated call.

import type { Context, MiddlewareHandler, Next } from "hono";
import { createLRU } from "lru.min";

import { looksLikeApiKey, type UnknownKeyGate, type VerifiedKey } from "../auth/api-keys.js";
import { FULL_GRANT } from "../auth/grants.js";
import { revokedError } from "../auth/revocation-watch.js";
import { createTokenVerifier, type VerifiedToken } from "../auth/tokens.js";
import type { Deps } from "../deps.js";
import { DomainError, RateLimitedError } from "../errors.js";
import { countTry, giveTryBack } from "../rate-limits.js";
import { clientIp } from "./client-ip.js";
import type { AppEnv, AuthContext } from "./context.js";
import { requestLogger } from "./request-log.js";

/** Against a 24 h TTL, renewing once a minute is as good as on every call, and saves the
 * hot path a Redis write per request. */
const RENEW_EVERY_MS = 60_000;
const MAX_TRACKED_SESSIONS = 100_000;

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The token of an Authorization header, if it is a bearer token. */
export const bearerToken = (header: string): string | undefined => BEARER.exec(header)?.[1];

/** Why an Authorization header gives no token. Two headers arrive joined by ", " (the web
 * Headers rule), which no token contains. */
function unusableAuthorization(header: string): string {
  const send = "send 'Authorization: Bearer <access_token or API key>'";
  if (header === "") return `Missing bearer token: ${send}`;
  if (/^Bearer\s+\S+\s*,/i.test(header)) return `More than one Authorization header (or one with several values): ${send} once`;
  return `The Authorization header is not a bearer token: ${send}`;
}

/** A route served without a token: its method and its path exactly as requested. */
export interface PublicRoute {
  method: "GET" | "POST";
  path: string;
}

/** Authenticates every request, to a route or to no route at all, unless it is one of
 * `publicRoutes`: a route added anywhere needs a token unless it is listed there. */
export function requireAuth(deps: Deps, publicRoutes: readonly PublicRoute[]): MiddlewareHandler<AppEnv> {
  const publicMethods = new Map<string, Set<string>>();
  for (const { method, path } of publicRoutes) publicMethods.set(path, (publicMethods.get(path) ?? new Set()).add(method));
  // Least recently used out first, so sessions in use keep their renewal pace.
  const renewedAt = createLRU<string, number>({ max: MAX_TRACKED_SESSIONS });
  const verify = createTokenVerifier([deps.config.jwtSecret, ...deps.config.previousJwtSecrets]);

  const admit = (c: Context<AppEnv>, claims: AuthContext, next: Next, now: number) => {
    c.set("auth", claims);
    if (claims.kind === "login") c.set("grant", FULL_GRANT);
    if (now - (renewedAt.get(claims.sessionId) ?? 0) > RENEW_EVERY_MS) {
      renewedAt.set(claims.sessionId, now);
      // Renewal is not on the request's critical path; a failure only shortens the session.
      deps.sessions.touch(claims.sessionId, claims.userId, deps.config.sessionTtlSeconds).catch((err: unknown) => {
        requestLogger(c).warn({ err }, "session renewal failed");
      });
    }
    return next();
  };

  /** A client's unknown keys are counted, and refused past the limit before the store is read
   * (UnknownKeyGate). While Redis cannot count, keys are verified uncounted: the store still
   * answers them, and refusing every key not cached would turn a Redis outage into an API key
   * outage. */
  const unknownKeyGate = (c: Context<AppEnv>): UnknownKeyGate => {
    const { maxPerClient, windowSeconds } = deps.config.unknownApiKeys;
    const key = `api-key-unknown:client:${clientIp(c, deps.config.trustedProxies)}`;
    return {
      admit: () =>
        countTry(deps, key, { max: maxPerClient, windowSeconds }, "Too many unknown API keys from this client; try again later").catch((err: unknown) => {
          if (err instanceof RateLimitedError) throw err;
        }),
      refund: () => giveTryBack(deps, key, windowSeconds).catch(() => undefined),
    };
  };

  const admitKey = (c: Context<AppEnv>, key: VerifiedKey, next: Next, now: number) => {
    c.set("grant", key.grant);
    deps.apiKeys.used(key, now);
    return admit(c, key.auth, next, now);
  };

  const admitIfStanding = async (c: Context<AppEnv>, claims: VerifiedToken, next: Next) => {
    if (!(await deps.tokens.check(claims))) throw revokedError({ keyId: null });
    return admit(c, claims, next, Date.now());
  };

  // Not an async function: a token verified and found standing before (nearly every call)
  // passes without a promise or an extra turn of the microtask queue. A refusal thrown here
  // reaches onError as one thrown from an async middleware would.
  return (c, next) => {
    // hono answers HEAD with the GET route.
    const method = c.req.method === "HEAD" ? "GET" : c.req.method;
    if (publicMethods.get(c.req.path)?.has(method)) return next();
    // Before the credential is looked up: a revocation heard while the store is read for it may
    // not be in the answer, and the work the request starts must ask again (standing.ts).
    c.set("revocationsSeen", deps.revocations.seen);
    const header = c.req.header("authorization") ?? "";
    const token = bearerToken(header);
    if (token === undefined) throw new DomainError("unauthorized", unusableAuthorization(header));
    if (looksLikeApiKey(token)) {
      const now = Date.now();
      const key = deps.apiKeys.cached(token, now);
      if (key) return admitKey(c, key, next, now);
      return deps.apiKeys.verify(token, unknownKeyGate(c)).then((verified) => admitKey(c, verified, next, Date.now()));
    }
    const known = verify.cached(token);
    if (known) {
      const now = Date.now();
      const standing = deps.tokens.cached(known, now);
      if (standing) return admit(c, known, next, now);
      if (standing === false) throw revokedError({ keyId: null });
      return admitIfStanding(c, known, next);
    }
    return verify(token).then((claims) => admitIfStanding(c, claims, next));
  };
}
