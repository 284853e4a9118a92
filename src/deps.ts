// What the app is built from: made once at start (src/lifecycle.ts) or by a test, then passed
// in; nothing reads the environment or opens a connection at request time.

import type { ChatModel } from "../agents/model.js";
import type { Prompts } from "../agents/prompts.js";
import type { ApiKeyVerifier } from "./auth/api-keys.js";
import type { AuditTrail } from "./audit/trail.js";
import type { PasswordHasher } from "./auth/passwords.js";
import type { RevocationWatch } from "./auth/revocation-watch.js";
import type { TokenStanding } from "./auth/token-standing.js";
import type { Config } from "./config.js";
import type { ConnectorCache } from "./connectors/cache.js";
import type { TargetGate } from "./connectors/target-gate.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";
import type { Monitoring } from "./monitoring/runtime.js";
import type { AskTurns } from "./ask-turns.js";
import type { SessionStore } from "./sessions/types.js";
import type { Store } from "./store/client.js";

export interface Deps {
  config: Config;
  store: Store;
  sessions: SessionStore;
  logger: Logger;
  /** bcrypt in worker threads. */
  passwords: PasswordHasher;
  connectors: ConnectorCache;
  /** Whether a verified token was revoked since, cached per process and told across instances. */
  tokens: TokenStanding;
  /** Verifies API keys, cached per process; revoked through `tokens.revoked({ keyId })`. */
  apiKeys: ApiKeyVerifier;
  /** Work under way for a credential, stopped when it is revoked (src/http/standing.ts). */
  revocations: RevocationWatch;
  /** Where connections to customer databases may go (network policy, Pulse's own servers). */
  targetGate: TargetGate;
  /** Null when no model server is configured: /ask answers 503, the rest works. */
  model: ChatModel | null;
  prompts: Prompts;
  /** Monitoring's clock, settings and per-database budgets (the scheduler itself is started
   * by startService, or driven by tests). */
  monitoring: Monitoring;
  /** Records every statement sent to a customer database; null when AUDIT_TRAIL=off. */
  audit: AuditTrail | null;
  /** This app's Prometheus registry and counters (GET /metrics). */
  metrics: Metrics;
  /** Each user's questions under way in this instance (ASK_MAX_CONCURRENT). */
  askTurns: AskTurns;
  /** Aborted, a 503 shutting_down its reason, as shutdown's drain nears its end: the work of
   * requests still running stops (src/http/standing.ts), and they are answered, not cut. */
  shuttingDown: AbortController;
}
