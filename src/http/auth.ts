// Bearer-token middleware: verifies the JWT and renews the session's TTL, so a session lives
// 24 h after its last authenticated call.

import type { MiddlewareHandler } from "hono";

import { verifyToken } from "../auth/tokens.js";
import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";
import type { AppEnv } from "./context.js";

export function requireAuth(deps: Deps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new DomainError("unauthorized", "Missing bearer token: send 'Authorization: Bearer <access_token>'");
    const claims = await verifyToken(match[1]!, deps.config.jwtSecret);
    c.set("auth", claims);
    // Renewal is not on the request's critical path; a failure only shortens the session.
    deps.sessions.touch(claims.sessionId, deps.config.sessionTtlSeconds).catch((err: unknown) => {
      c.get("logger").warn({ err }, "session renewal failed");
    });
    await next();
  };
}
