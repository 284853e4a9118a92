// Hono environment shared by every router: per-request variables set by middleware.

import type { KeyAuth } from "../auth/api-keys.js";
import type { Grant } from "../auth/grants.js";
import type { VerifiedToken } from "../auth/tokens.js";
import type { Logger } from "../logger.js";

/** The caller's verified, unrevoked credential: a login's token (`kind: "login"`) or an API key
 * (`kind: "key"`). Both name the user and a database session (a key's is its own). */
export type AuthContext = Readonly<VerifiedToken> | Readonly<KeyAuth>;

export interface AppEnv {
  Variables: {
    requestId: string;
    /** The service logger; use requestLogger(c) to log about this request. */
    logger: Logger;
    auth: AuthContext;
    /** What the credential allows (src/auth/grants.ts); a login token allows everything. */
    grant: Grant;
    /** RevocationWatch.seen when the credential was found standing (src/http/standing.ts). */
    revocationsSeen: number;
    /** Set by a route answering with a stream (answeredWhenStreamEnds, request-edge.ts). */
    streamed: true;
  };
}
