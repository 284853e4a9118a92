// Who calls a tool: the user and credential the HTTP edge authenticated (src/http/auth.ts), and
// where to log about their request. Tools never see the token itself.

import type { Grant } from "../auth/grants.js";
import type { Logger } from "../logger.js";

export interface McpCaller {
  userId: number;
  /** The token's session (a login's); conversations of `ask` are kept per thread, not here. */
  sessionId: string;
  grant: Grant;
  /** The request's logger (with its request id). */
  logger: Logger;
  requestId: string;
}
