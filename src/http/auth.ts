// Bearer-token middleware: verifies the JWT and renews the session's TTL, so a session lives
// 24 h after its last authenticated call.

import type { Context, MiddlewareHandler, Next } from "hono";

import { createTokenVerifier, type TokenClaims } from "../auth/tokens.js";
import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";
import type { AppEnv } from "./context.js";
import { requestLogger } from "./request-log.js";

/** Against a 24 h TTL, renewing once a minute is as good as on every call, and saves the
 * hot path a Redis write per request. */
const RENEW_EVERY_MS = 60_000;
const MAX_TRACKED_SESSIONS = 100_000;

const perApp = new WeakMap<Deps, MiddlewareHandler<AppEnv>>();

/** One middleware (and so one token cache and renewal clock) per app, whichever router asks. */
export function requireAuth(deps: Deps): MiddlewareHandler<AppEnv> {
  let middleware = perApp.get(deps);
  if (!middleware) perApp.set(deps, (middleware = createAuth(deps)));
  return middleware;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function createAuth(deps: Deps): MiddlewareHandler<AppEnv> {
  const renewedAt = new Map<string, number>();
  const verify = createTokenVerifier(deps.config.jwtSecret);

  const admit = (c: Context<AppEnv>, claims: TokenClaims, next: Next) => {
    c.set("auth", claims);
    const now = Date.now();
    if (now - (renewedAt.get(claims.sessionId) ?? 0) > RENEW_EVERY_MS) {
      if (renewedAt.size >= MAX_TRACKED_SESSIONS) renewedAt.clear();
      renewedAt.set(claims.sessionId, now);
      // Renewal is not on the request's critical path; a failure only shortens the session.
      deps.sessions.touch(claims.sessionId, deps.config.sessionTtlSeconds).catch((err: unknown) => {
        requestLogger(c).warn({ err }, "session renewal failed");
      });
    }
    return next();
  };

  // Not an async function: a token verified before (nearly every call) passes without a
  // promise or an extra turn of the microtask queue. A refusal thrown here reaches onError as
  // one thrown from an async middleware would.
  return (c, next) => {
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    if (!match) throw new DomainError("unauthorized", "Missing bearer token: send 'Authorization: Bearer <access_token>'");
    const token = match[1]!;
    const known = verify.cached(token);
    if (known) return admit(c, known, next);
    return verify(token).then((claims) => admit(c, claims, next));
  };
}
