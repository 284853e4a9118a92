// Hono environment shared by every router: per-request variables set by middleware.

import type { Logger } from "../logger.js";

export interface AuthContext {
  userId: number;
  sessionId: string;
}

export interface AppEnv {
  Variables: {
    requestId: string;
    /** The service logger; use requestLogger(c) to log about this request. */
    logger: Logger;
    auth: AuthContext;
  };
}
