// Who calls a tool: the user and credential the HTTP edge authenticated (src/http/auth.ts), and
// where to log about their request. It travels with each request through the SDK's `authInfo`
// (servers are reused across requests: see route.ts); tools never see the token itself.

import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";

import type { Grant } from "../auth/grants.js";
import type { Logger } from "../logger.js";

export interface McpCaller {
  userId: number;
  /** The credential's session (a login's, or an API key's own); conversations of `ask` are kept per thread. */
  sessionId: string;
  /** An API key's `ask` conversations are kept apart from its user's (services/ask.ts). */
  kind: "login" | "key";
  grant: Grant;
  /** The request's logger (with its request id). */
  logger: Logger;
  requestId: string;
}

/** What the route hands the transport: the caller, and no token (the SDK's field stays empty). */
export const authInfoOf = (caller: McpCaller): AuthInfo => ({ token: "", clientId: String(caller.userId), scopes: [], extra: { caller } });

/** The caller of a tool call; every request to /mcp carries one (route.ts). */
export function callerOf(extra: { authInfo?: AuthInfo | undefined }): McpCaller {
  const caller = extra.authInfo?.extra?.caller as McpCaller | undefined;
  if (!caller) throw new Error("MCP request without its caller");
  return caller;
}
