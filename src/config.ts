// Every setting, read from the environment once at start and validated as a whole, so a
// misconfigured deployment fails with one message naming every problem.

import { existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";

import { decodeKey, generatedSecrets, generatedSecretsFile, MIN_JWT_SECRET_CHARS } from "./generated-secrets.js";
import type { LogFormat } from "./logger.js";
import { parseNetwork, type Network } from "./net/addresses.js";
import { validDnsServers } from "./net/resolve.js";
import { packageVersion } from "./paths.js";
import { MODEL_SERVERS, TOOL_PROTOCOLS, type ModelServerName, type ToolProtocol } from "../agents/model-server.js";

/** A whole number written in digits, as the HTTP API takes them: coercion read " " as 0 (PORT=" "
 * listened on a random port, SQLITE_MEMORY_MB=" " bounded nothing), "0x1F40" as 8000 and "1e4"
 * as 10000. Spaces around the digits are allowed. */
const intIn = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, "must be a whole number written in digits (such as 30000)")
    .transform(Number)
    .pipe(z.number().min(min).max(max));
/** Unset, as a line `NAME=` of an env file leaves it; or only spaces, which no setting means. */
const emptyAsUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
const optionalString = z.preprocess(emptyAsUndefined, z.string().optional());
/** Every comma-separated field, trimmed, empty ones too (a secret list names items by place). */
const commaFields = (text: string | undefined) => (text ?? "").split(",").map((item) => item.trim());
const commaList = (text: string | undefined) => commaFields(text).filter(Boolean);
/** Comma-separated CIDR ranges ("10.0.0.0/8, fd00::/8") or single addresses. */
const networkList = z.preprocess(
  emptyAsUndefined,
  z
    .string()
    .optional()
    .transform(commaList)
    .refine((items) => items.every((item) => parseNetwork(item) !== null), "must be comma-separated address ranges such as 10.0.0.0/8 or fd00::/8")
    .transform((items) => items.map((item) => parseNetwork(item)!)),
);

/** A Redis URL's path is the database's number: ioredis took "/abc" as a command Redis refused,
 * uncaught. (A URL that does not parse is refused at connect, with the reason.) */
function numberedDatabase(url: string): boolean {
  if (!URL.canParse(url)) return true;
  return /^\/?(\d+)?$/.test(new URL(url).pathname);
}

/** One item of a comma-separated list of secrets, with its place in the list as written. */
interface ListedSecret {
  value: string;
  /** "item 3 of 3": counted over every comma-separated field, empty ones too, so that in
   * "a,,b" the operator is pointed at b, not at the empty field between. */
  place: string;
}

/** Comma-separated secrets, each meeting `valid` (the rule of the setting they stand beside).
 * Empty items are dropped. A problem names the item by its place in the list, never by its
 * value. */
const secretList = (valid: (item: string) => boolean, rule: string) =>
  z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .optional()
      .transform((text): ListedSecret[] => {
        const fields = commaFields(text);
        return fields.flatMap((value, i) => (value ? [{ value, place: `item ${i + 1} of ${fields.length}` }] : []));
      })
      .superRefine((items, ctx) => {
        for (const { value, place } of items) if (!valid(value)) ctx.addIssue({ code: "custom", message: `${place} ${rule}` });
      }),
  );

/** A secret made by hand as a placeholder (32 spaces, 64 zeros, "changeme" repeated) has few
 * different characters; a random one of 32 characters or bytes has some 25 to 30. */
const MIN_DISTINCT_IN_SECRET = 8;
const distinctIn = (secret: string | Buffer) => new Set<string | number>(typeof secret === "string" ? secret : secret.values()).size;

/** STORE_QUERY_TIMEOUT_MS unless set. */
export const DEFAULT_STORE_QUERY_TIMEOUT_MS = 15_000;

const envSchema = z.object({
  NODE_ENV: z.preprocess(emptyAsUndefined, z.enum(["development", "production", "test"]).default("development")),
  HOST: z.preprocess(emptyAsUndefined, z.string().default("0.0.0.0")),
  PORT: z.preprocess(emptyAsUndefined, intIn(0, 65535).default(8000)),
  HTTP_SEND_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 3_600_000).default(30_000)),
  HTTP_HEADERS_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(1000, 600_000).default(20_000)),
  HTTP_REQUEST_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(1000, 3_600_000).default(60_000)),
  HTTP_UNSENT_MAX_BYTES: z.preprocess(emptyAsUndefined, intIn(1024 * 1024, 64 * 1024 * 1024 * 1024).default(256 * 1024 * 1024)),
  DATA_DIR: z.preprocess(emptyAsUndefined, z.string().default("./data")),
  SQLITE_ROOT: optionalString,
  DATABASE_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  STORE_QUERY_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 600_000).default(DEFAULT_STORE_QUERY_TIMEOUT_MS)),
  REDIS_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
      .refine(numberedDatabase, "must name its database by number (such as redis://host:6379/0), or none")
      .optional(),
  ),
  REDIS_PREFIX: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/, "must be 1 to 64 letters, digits or _ . : - (such as pulse: or pulse-staging:)")
      .default("pulse:"),
  ),
  JWT_SECRET: z.preprocess(emptyAsUndefined, z.string().min(MIN_JWT_SECRET_CHARS, `must be at least ${MIN_JWT_SECRET_CHARS} characters`).optional()),
  SECRETS_KEY: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .refine((v) => decodeKey(v) !== null, "must be 32 bytes, as 64 hex characters or base64")
      .optional(),
  ),
  // Replaced secrets still accepted while a rotation is under way (README, Rotating secrets).
  JWT_SECRET_PREVIOUS: secretList((v) => v.length >= MIN_JWT_SECRET_CHARS, `must be at least ${MIN_JWT_SECRET_CHARS} characters, as JWT_SECRET`),
  SECRETS_KEY_PREVIOUS: secretList((v) => decodeKey(v) !== null, "must be 32 bytes, as 64 hex characters or base64, as SECRETS_KEY"),
  JWT_EXPIRES_SECONDS: z.preprocess(emptyAsUndefined, intIn(60, 30 * 86400).default(86400)),
  SESSION_TTL_SECONDS: z.preprocess(emptyAsUndefined, intIn(60, 30 * 86400).default(86400)),
  TOKEN_RECHECK_SECONDS: z.preprocess(emptyAsUndefined, intIn(1, 3600).default(10)),
  BCRYPT_ROUNDS: z.preprocess(emptyAsUndefined, intIn(4, 15).default(10)),
  LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: z.preprocess(emptyAsUndefined, intIn(1, 10_000).default(10)),
  LOGIN_MAX_ATTEMPTS_PER_ACCOUNT_ALL_CLIENTS: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(500)),
  LOGIN_MAX_ATTEMPTS_PER_CLIENT: z.preprocess(emptyAsUndefined, intIn(1, 100_000).default(100)),
  LOGIN_WINDOW_SECONDS: z.preprocess(emptyAsUndefined, intIn(1, 86400).default(900)),
  LOGIN_MAX_SESSIONS_PER_ACCOUNT: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(1000)),
  LOGIN_SESSIONS_WINDOW_SECONDS: z.preprocess(emptyAsUndefined, intIn(60, 30 * 86400).default(86400)),
  REGISTER_MAX_PER_CLIENT: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(20)),
  REGISTER_MAX_TOTAL: z.preprocess(emptyAsUndefined, intIn(1, 10_000_000).default(1000)),
  REGISTER_WINDOW_SECONDS: z.preprocess(emptyAsUndefined, intIn(1, 86400).default(3600)),
  API_KEY_MAX_UNKNOWN_PER_CLIENT: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(20)),
  API_KEY_UNKNOWN_WINDOW_SECONDS: z.preprocess(emptyAsUndefined, intIn(1, 86400).default(900)),
  PASSWORD_HASH_THREADS: z.preprocess(emptyAsUndefined, intIn(1, 64).default(2)),
  TRUST_PROXY: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^(true|false|[1-9])$/, "must be false, true (one proxy) or the number of proxies in front of Pulse (1 to 9)")
      .default("false"),
  ),
  CONNECT_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 120_000).default(5000)),
  QUERY_MAX_ROWS: z.preprocess(emptyAsUndefined, intIn(1, 100_000).default(1000)),
  QUERY_MAX_BYTES: z.preprocess(emptyAsUndefined, intIn(1024, 512 * 1024 * 1024).default(16 * 1024 * 1024)),
  QUERY_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 3_600_000).default(30_000)),
  QUERY_MAX_SQL_CHARS: z.preprocess(emptyAsUndefined, intIn(1000, 1_000_000).default(100_000)),
  QUERY_PARSE_THREADS: z.preprocess(emptyAsUndefined, intIn(1, 64).default(2)),
  QUERY_PARSE_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(10, 600_000).default(5000)),
  CONNECTION_MAX_CONCURRENCY: z.preprocess(emptyAsUndefined, intIn(1, 1000).default(4)),
  CONNECTION_MAX_WAITING: z.preprocess(emptyAsUndefined, intIn(0, 10_000).default(32)),
  CONNECTION_QUERIES_PER_MINUTE: z.preprocess(emptyAsUndefined, intIn(1, 10_000_000).default(600)),
  USER_MAX_CONCURRENCY: z.preprocess(emptyAsUndefined, intIn(1, 1000).default(8)),
  USER_MAX_WAITING: z.preprocess(emptyAsUndefined, intIn(0, 10_000).default(32)),
  USER_QUERIES_PER_MINUTE: z.preprocess(emptyAsUndefined, intIn(1, 10_000_000).default(1200)),
  // Default: CONNECTION_MAX_CONCURRENCY (see loadConfig).
  CONNECTION_POOL_SIZE: z.preprocess(emptyAsUndefined, intIn(1, 1000).optional()),
  CONNECTOR_CACHE_MAX: z.preprocess(emptyAsUndefined, intIn(1, 100_000).default(200)),
  CONNECTOR_IDLE_SECONDS: z.preprocess(emptyAsUndefined, intIn(1, 86_400).default(300)),
  SCHEMA_MAX_BYTES: z.preprocess(emptyAsUndefined, intIn(65_536, 1024 * 1024 * 1024).default(32 * 1024 * 1024)),
  SCHEMA_CACHE_MAX_BYTES: z.preprocess(emptyAsUndefined, intIn(65_536, 64 * 1024 * 1024 * 1024).default(256 * 1024 * 1024)),
  SCHEMA_MAX_AGE_SECONDS: z.preprocess(emptyAsUndefined, intIn(1, 30 * 86_400).default(3600)),
  // Node itself reserves about 800 MiB of address space: less can not even start.
  SQLITE_MEMORY_MB: z.preprocess(
    emptyAsUndefined,
    intIn(0, 1_048_576)
      .refine((v) => v === 0 || v >= 1024, "must be 0 (no bound) or at least 1024")
      .default(1536),
  ),
  LOG_LEVEL: z.preprocess(
    emptyAsUndefined,
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  ),
  LOG_FORMAT: z.preprocess(emptyAsUndefined, z.enum(["json", "pretty"]).optional()),
  OPENAI_BASE_URL: z.preprocess(emptyAsUndefined, z.url().optional()),
  OPENAI_API_KEY: optionalString,
  OPENAI_MODEL: z.preprocess(emptyAsUndefined, z.string().default("gpt-4o-mini")),
  OPENAI_TEMPERATURE: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .trim()
      .regex(/^\d+(\.\d+)?$/, "must be a number written in digits (such as 0.2)")
      .transform(Number)
      .pipe(z.number().max(2))
      .default(0),
  ),
  OPENAI_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 600_000).default(60_000)),
  OPENAI_MAX_TOKENS: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(4096)),
  MODEL_SERVER: z.preprocess(emptyAsUndefined, z.enum(MODEL_SERVERS, { error: `must be one of ${MODEL_SERVERS.join(", ")}` }).default("auto")),
  MODEL_TOOLS: z.preprocess(emptyAsUndefined, z.enum(TOOL_PROTOCOLS, { error: `must be one of ${TOOL_PROTOCOLS.join(", ")}` }).default("auto")),
  MODEL_CONTEXT_TOKENS: z.preprocess(emptyAsUndefined, intIn(1024, 10_000_000).optional()),
  AGENT_MAX_STEPS: z.preprocess(emptyAsUndefined, intIn(1, 50).default(8)),
  AGENT_SCHEMA_TOKENS: z.preprocess(emptyAsUndefined, intIn(200, 100_000).default(4000)),
  AGENT_ROWS_TO_MODEL: z.preprocess(emptyAsUndefined, intIn(1, 1000).default(50)),
  ASK_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(1000, 3_600_000).default(120_000)),
  ASK_MAX_QUESTION_CHARS: z.preprocess(emptyAsUndefined, intIn(10, 100_000).default(2000)),
  ASK_PER_MINUTE: z.preprocess(emptyAsUndefined, intIn(1, 100_000).default(20)),
  ASK_MAX_CONCURRENT: z.preprocess(emptyAsUndefined, intIn(1, 1000).default(4)),
  ASK_TOKENS_PER_HOUR: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000_000_000).default(1_000_000)),
  CONVERSATION_MAX_TURNS: z.preprocess(emptyAsUndefined, intIn(1, 200).default(10)),
  CONVERSATION_TTL_SECONDS: z.preprocess(emptyAsUndefined, intIn(60, 30 * 86400).default(86400)),
  CONVERSATION_MAX_NEW_PER_USER: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(500)),
  MONITOR_SCHEDULER: z.preprocess(emptyAsUndefined, z.enum(["on", "off"]).default("on")),
  MONITOR_TICK_MS: z.preprocess(emptyAsUndefined, intIn(100, 3_600_000).default(5000)),
  MONITOR_MAX_CONCURRENCY: z.preprocess(emptyAsUndefined, intIn(1, 1000).default(4)),
  MONITOR_CONNECTION_CONCURRENCY: z.preprocess(emptyAsUndefined, intIn(1, 100).default(1)),
  MONITOR_QUERIES_PER_MINUTE: z.preprocess(emptyAsUndefined, intIn(1, 10_000_000).default(120)),
  MONITOR_STATEMENT_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 3_600_000).default(10_000)),
  MONITOR_SLOW_CHECK_MS: z.preprocess(emptyAsUndefined, intIn(1, 3_600_000).default(1_000)),
  MONITOR_RUN_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 24 * 3_600_000).default(300_000)),
  MONITOR_ALERT_AFTER_SKIPS: z.preprocess(emptyAsUndefined, intIn(1, 10_000).default(3)),
  MONITOR_LEASE_SECONDS: z.preprocess(emptyAsUndefined, intIn(10, 86_400).default(300)),
  // At most the drain's 10 s less the 2 s its stopped checks are given (serve.ts).
  MONITOR_STOP_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(0, 8_000).default(8_000)),
  MONITOR_RETRY_ATTEMPTS: z.preprocess(emptyAsUndefined, intIn(1, 10).default(3)),
  MONITOR_RETRY_BASE_MS: z.preprocess(emptyAsUndefined, intIn(0, 60_000).default(500)),
  MONITOR_MIN_INTERVAL_SECONDS: z.preprocess(emptyAsUndefined, intIn(1, 86_400).default(60)),
  MONITOR_NOTIFY_TIMEOUT_MS: z.preprocess(emptyAsUndefined, intIn(100, 120_000).default(5000)),
  MONITOR_RUN_RETENTION_DAYS: z.preprocess(emptyAsUndefined, intIn(1, 3650).default(35)),
  MONITOR_MANUAL_RUNS_PER_MINUTE: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(30)),
  MONITOR_ALERT_ACTIONS_PER_MINUTE: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(60)),
  WEBHOOK_ALLOW_PRIVATE: z.preprocess(emptyAsUndefined, z.enum(["true", "false"]).default("false")),
  AUDIT_TRAIL: z.preprocess(emptyAsUndefined, z.enum(["on", "off"]).default("on")),
  AUDIT_RETENTION_DAYS: z.preprocess(emptyAsUndefined, intIn(1, 36_500).default(90)),
  AUDIT_BUFFER_RECORDS: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(10_000)),
  TARGET_ALLOW_NETWORKS: networkList,
  TARGET_DENY_NETWORKS: networkList,
  TARGET_DNS_SERVERS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .optional()
      .transform(commaList)
      .refine(validDnsServers, "must be comma-separated DNS server addresses such as 10.0.0.2 or [fd00::53]:5353"),
  ),
  CONNECTION_TESTS_PER_MINUTE: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(10)),
  USER_MAX_CONNECTIONS: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(100)),
  USER_MAX_MONITORED_TABLES: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(2_000)),
  USER_MAX_CHANNELS: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(50)),
  USER_MAX_API_KEYS: z.preprocess(emptyAsUndefined, intIn(1, 1_000_000).default(100)),
  USER_MAX_CHECK_RUNS_PER_HOUR: z.preprocess(emptyAsUndefined, intIn(1, 100_000_000).default(50_000)),
  // Trimmed: a secret mounted from a file ends in a line break, which no scraper sends (Prometheus
  // trims its own token file). Spaces inside cannot cross a Bearer header either: refused, not a
  // /metrics that answers 401 to every scrape.
  METRICS_TOKEN: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .trim()
      .min(16, "must be at least 16 characters")
      .regex(/^\S+$/, "must not contain spaces: an Authorization: Bearer header cannot carry them")
      .optional(),
  ),
});

/** Every environment variable Pulse reads. */
export const CONFIG_VARIABLES = Object.keys(envSchema.shape);

export interface Config {
  env: "development" | "production" | "test";
  host: string;
  port: number;
  /** A response the client stops reading is dropped after this long without progress. */
  sendTimeoutMs: number;
  /** A request's headers, and the whole request, must arrive within these (408 otherwise). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** At most this much of the responses being sent is kept waiting for their clients. */
  unsentMaxBytes: number;
  dataDir: string;
  sqliteRoot: string;
  /** Unset: embedded PGlite under dataDir. */
  databaseUrl: string | undefined;
  /** A query to the metadata PostgreSQL still unanswered after this fails as the store being
   * unavailable (503), rather than waiting for TCP to notice a store gone silent. */
  storeQueryTimeoutMs: number;
  /** Unset: in-process sessions (single instance only). */
  redisUrl: string | undefined;
  /** Put before every Redis key and channel, so deployments sharing a Redis do not meet. */
  redisPrefix: string;
  /** Signs new tokens; verifies them, as each of previousJwtSecrets does (a rotation). */
  jwtSecret: Uint8Array;
  previousJwtSecrets: Uint8Array[];
  /** AES-256 key sealing stored database passwords and channel URLs; it and each of
   * previousSecretsKeys open them (openingKeys, src/auth/secrets.ts). */
  secretsKey: Buffer;
  previousSecretsKeys: Buffer[];
  jwtExpiresSeconds: number;
  sessionTtlSeconds: number;
  /** How long an instance trusts that a token's user exists and it is not revoked, before
   * asking the store again: the bound on a revocation whose announcement it missed. */
  tokenRecheckSeconds: number;
  bcryptRounds: number;
  /** Login limits per window: failures per account from one client, failures per account from
   * all clients it has not logged in from, and attempts per client. */
  login: { maxPerAccount: number; maxPerAccountAllClients: number; maxPerClient: number; windowSeconds: number };
  /** Sessions one account may open (successful logins) per window: each is a Redis hash that
   * lives as long as its token is used, and may hold a schema of up to 16,000 characters. */
  sessionsPerAccount: { max: number; windowSeconds: number };
  /** Sign-ups per client address and in total (across instances) per window. */
  register: { maxPerClient: number; maxTotal: number; windowSeconds: number };
  /** API keys the store did not know, per client address and window: each costs a store read. */
  unknownApiKeys: { maxPerClient: number; windowSeconds: number };
  /** Worker threads hashing and checking passwords. */
  passwordHashThreads: number;
  /** Proxies in front of Pulse whose X-Forwarded-For entries are trusted (0: none). */
  trustedProxies: number;
  connectTimeoutMs: number;
  /** Defaults and ceilings of every statement sent to a customer database. */
  query: { maxRows: number; maxBytes: number; timeoutMs: number };
  /** The guard's bounds per statement: length, and the worker threads and time that long
   * statements are parsed with. */
  sqlGuard: { maxChars: number; threads: number; timeoutMs: number };
  /** Budget of each target database (whichever saved connections reach it), and of each user
   * across all their connections, for the whole deployment: each live instance takes an equal share. */
  connectionBudget: { concurrency: number; maxWaiting: number; perMinute: number };
  userBudget: { concurrency: number; maxWaiting: number; perMinute: number };
  targets: TargetNetworkConfig;
  /** What one user may keep at most (src/store/quotas.ts). */
  quotas: QuotaConfig;
  /** `sqliteMemoryMb`: address space of each SQLite process, 0 for no bound. */
  connectors: {
    poolSize: number;
    cacheMax: number;
    idleSeconds: number;
    sqliteMemoryMb: number;
    /** One connection's cached schema at most, and all of them together (schema-memory.ts). */
    schemaMaxBytes: number;
    schemaCacheMaxBytes: number;
    /** How long a cached schema is used before the catalog is read again on next use. */
    schemaMaxAgeSeconds: number;
  };
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Unset LOG_FORMAT: pretty on a terminal outside production, JSON lines otherwise. */
  logFormat: LogFormat;
  openai: {
    baseUrl: string | undefined;
    apiKey: string | undefined;
    model: string;
    temperature: number;
    timeoutMs: number;
    maxTokens: number;
    /** Which server's quirks to adapt to (agents/model-server.ts); auto guesses from baseUrl. */
    server: ModelServerName;
    /** How the model runs SQL: tool calls, the fenced-SQL text protocol, or tools with text as fallback. */
    tools: ToolProtocol;
    /** The model's context window: schema, rows and history are fitted inside it when set. */
    contextTokens: number | undefined;
  };
  agent: { maxSteps: number; schemaTokens: number; rowsToModel: number };
  /** `maxNewConversations`: conversations one user may start per conversationTtlSeconds; each is
   * a Redis list of up to maxTurns turns, so this bounds what one user keeps there.
   * `tokensPerHour`: model tokens one user's questions may use per hour, across instances. */
  ask: { timeoutMs: number; maxQuestionChars: number; perMinute: number; maxConcurrent: number; tokensPerHour: number; maxTurns: number; conversationTtlSeconds: number; maxNewConversations: number };
  monitor: MonitorConfig;
  audit: AuditConfig;
  /** The bearer token GET /metrics asks for; unset, /metrics answers 404. */
  metricsToken: string | undefined;
  version: string;
}

/** Saved connections, monitored tables, notification channels and API keys one user may keep,
 * and the check runs an hour their enabled tables may make. */
export interface QuotaConfig {
  connections: number;
  monitoredTables: number;
  channels: number;
  apiKeys: number;
  checkRunsPerHour: number;
}

/** The audit trail of every statement sent to a customer database (src/audit/trail.ts). */
export interface AuditConfig {
  /** Off: statements are not recorded at all (benchmarks; the trail is lost). */
  enabled: boolean;
  retentionDays: number;
  /** Records waiting to be written at most; past that, statements are refused (503). */
  bufferRecords: number;
}

/** The scheduler and the budget its checks run under (per target database in each instance; one
 * instance at a time runs a connection's checks, so for one connection it holds across instances). */
export interface MonitorConfig {
  /** Whether startService runs the scheduler in this instance. */
  scheduler: boolean;
  tickMs: number;
  /** Monitored tables whose checks run at once in this instance. */
  maxConcurrency: number;
  /** Monitoring statements running at once on one database (across instances: see above). */
  connectionConcurrency: number;
  queriesPerMinute: number;
  statementTimeoutMs: number;
  /** A check whose dry run takes longer is saved with a warning: it costs the monitored
   * database about that at every run. */
  slowCheckMs: number;
  /** A table's run starts no check past this (the rest are recorded as skipped), so one table
   * holds a scheduler slot, or a request, for a bounded time whatever its checks wait for. */
  runTimeoutMs: number;
  /** A check skipped this many runs in a row (budget, run timeout) counts as an error from then
   * on, so a check that never gets to run opens its alert instead of going quiet. */
  alertAfterSkips: number;
  leaseSeconds: number;
  /** How long stopping waits for running checks before leaving their leases to expire. */
  stopTimeoutMs: number;
  /** Attempts of a check whose connection failed, with exponential backoff from retryBaseMs. */
  retryAttempts: number;
  retryBaseMs: number;
  minIntervalSeconds: number;
  notifyTimeoutMs: number;
  /** Notification channels may target loopback, private and link-local addresses: off by
   * default in every mode, since a channel's URL comes from a user (tests and local setups). */
  webhookAllowPrivate: boolean;
  runRetentionDays: number;
  /** Runs a user may ask for (POST /api/tables/{id}/run) per minute, across their tables. */
  manualRunsPerMinute: number;
  /** Resolves and unmutes a user may make per minute (acknowledging and muting are free). */
  alertActionsPerMinute: number;
}

/** Where customer databases may be reached (src/connectors/network-policy.ts). */
export interface TargetNetworkConfig {
  /** Always allowed, even in a denied range or one refused by default (loopback in production). */
  allowNetworks: Network[];
  /** Refused unless allowed. */
  denyNetworks: Network[];
  /** Resolve host names with these servers instead of the system's resolver (none: the system's). */
  dnsServers: string[];
  /** Connections added, changed or tested per user and minute (each one connects). */
  testsPerMinute: number;
}

/** A model is usable once it has somewhere to go: a local server needs no key, OpenAI needs one. */
export function isModelConfigured(settings: { baseUrl?: string | undefined; apiKey?: string | undefined }): boolean {
  return Boolean(settings.baseUrl || settings.apiKey);
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Reads and validates the environment. Outside production, missing secrets are generated
 * once and kept in `$DATA_DIR/secrets.json` so restarts keep sessions and stored passwords.
 * `terminal`: whether logs go to a terminal (the default log format depends on it). */
/** `existingStore`: the store (and the generated secrets, if those are not given) must be there
 * already, not be made: `pulse check` run without the server's DATA_DIR made a new, empty
 * store and secrets file where it ran, and then found no table. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, terminal = process.stdout.isTTY === true, options: { existingStore?: boolean } = {}): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) throw invalidSettings(parsed.error);
  const e = parsed.data;
  if (e.NODE_ENV === "production") {
    // Every problem at once, missing and plain alike: an operator fixes them in one round.
    const missing = (["JWT_SECRET", "SECRETS_KEY", "DATABASE_URL", "REDIS_URL"] as const).filter((k) => !e[k]).map((k) => `${k}: required when NODE_ENV=production`);
    // A previous JWT secret still verifies tokens, so it must be as hard to guess as the
    // current one. A previous SECRETS_KEY only opens what is already sealed under it: a plain
    // one is exactly what a rotation must be able to read to move away from it.
    const plain = [
      ...(e.JWT_SECRET && distinctIn(e.JWT_SECRET) < MIN_DISTINCT_IN_SECRET
        ? [`JWT_SECRET: too plain to be a secret (fewer than ${MIN_DISTINCT_IN_SECRET} different characters); generate one, such as with \`openssl rand -base64 48\``]
        : []),
      ...e.JWT_SECRET_PREVIOUS.flatMap(({ value, place }) =>
        distinctIn(value) < MIN_DISTINCT_IN_SECRET ? [`JWT_SECRET_PREVIOUS: ${place} is too plain to be a secret (fewer than ${MIN_DISTINCT_IN_SECRET} different characters)`] : [],
      ),
      ...(e.SECRETS_KEY && distinctIn(decodeKey(e.SECRETS_KEY)!) < MIN_DISTINCT_IN_SECRET
        ? [`SECRETS_KEY: too plain to be a key (fewer than ${MIN_DISTINCT_IN_SECRET} different bytes); generate one, such as with \`openssl rand -hex 32\``]
        : []),
    ];
    if (missing.length + plain.length > 0) throw new ConfigError([...missing, ...plain]);
  }
  if (e.SCHEMA_MAX_BYTES > e.SCHEMA_CACHE_MAX_BYTES) {
    // One schema over the total would push every other connection's out and still not fit.
    throw new ConfigError([`SCHEMA_MAX_BYTES: must be at most SCHEMA_CACHE_MAX_BYTES (${e.SCHEMA_CACHE_MAX_BYTES})`]);
  }
  if (e.HTTP_HEADERS_TIMEOUT_MS > e.HTTP_REQUEST_TIMEOUT_MS) {
    // Node refuses a server whose headers may take longer than the whole request.
    throw new ConfigError([`HTTP_HEADERS_TIMEOUT_MS: must be at most HTTP_REQUEST_TIMEOUT_MS (${e.HTTP_REQUEST_TIMEOUT_MS})`]);
  }
  // A pool's sockets beside monitoring's are what the database's interactive budget lets run at
  // once in an instance (at most all of it): fewer, and those statements would queue for a
  // socket ahead of monitoring's checks, which must not wait behind other users' reads.
  if (e.CONNECTION_POOL_SIZE !== undefined && e.CONNECTION_POOL_SIZE < e.CONNECTION_MAX_CONCURRENCY) {
    throw new ConfigError([
      `CONNECTION_POOL_SIZE: must be at least CONNECTION_MAX_CONCURRENCY (${e.CONNECTION_MAX_CONCURRENCY}); to hold fewer connections to a database, lower CONNECTION_MAX_CONCURRENCY`,
    ]);
  }

  const dataDir = path.resolve(e.DATA_DIR);
  const needGenerated = !e.JWT_SECRET || !e.SECRETS_KEY;
  if (options.existingStore) {
    const secretsFile = generatedSecretsFile(dataDir);
    const missing = [...(needGenerated ? [secretsFile] : []), ...(e.DATABASE_URL ? [] : [path.join(dataDir, "pglite")])].filter((file) => !existsSync(file));
    // `pulse migrate` on a new DATA_DIR makes the store; the server writes secrets.json.
    if (!e.DATABASE_URL && missing.length === 1 && missing[0] === secretsFile) {
      throw new ConfigError([
        `DATA_DIR: the store at ${dataDir} has no secrets.json yet (the server writes it when it first starts there; \`pulse migrate\` does not): start the server once, or give JWT_SECRET and SECRETS_KEY`,
      ]);
    }
    if (missing.length > 0) {
      throw new ConfigError([`DATA_DIR: no Pulse store at ${dataDir} (${missing.join(" and ")} missing): run this with the server's settings (its DATA_DIR, or DATABASE_URL with JWT_SECRET and SECRETS_KEY)`]);
    }
  }
  const generated = needGenerated ? generatedSecrets(dataDir) : undefined;
  const jwtSecret = e.JWT_SECRET ?? generated!.jwtSecret;
  const secretsKey = decodeKey(e.SECRETS_KEY ?? generated!.secretsKey)!;
  const previousSecretsKeys = e.SECRETS_KEY_PREVIOUS.map(({ value }) => decodeKey(value)!);
  // The current one listed as previous is a rotation half done (the new key not set yet, or
  // the old one not moved to the list): it would seal under the key meant to go.
  const notReplaced = [
    ...e.JWT_SECRET_PREVIOUS.flatMap(({ value, place }) => (value === jwtSecret ? [`JWT_SECRET_PREVIOUS: ${place} is the current JWT_SECRET; list only secrets it replaced`] : [])),
    ...e.SECRETS_KEY_PREVIOUS.flatMap(({ place }, i) => (previousSecretsKeys[i]!.equals(secretsKey) ? [`SECRETS_KEY_PREVIOUS: ${place} is the current SECRETS_KEY; list only keys it replaced`] : [])),
  ];
  if (notReplaced.length > 0) throw new ConfigError(notReplaced);

  return {
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    sendTimeoutMs: e.HTTP_SEND_TIMEOUT_MS,
    headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
    unsentMaxBytes: e.HTTP_UNSENT_MAX_BYTES,
    dataDir,
    sqliteRoot: path.resolve(e.SQLITE_ROOT ?? path.join(dataDir, "sqlite")),
    databaseUrl: e.DATABASE_URL,
    storeQueryTimeoutMs: e.STORE_QUERY_TIMEOUT_MS,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    jwtSecret: new TextEncoder().encode(jwtSecret),
    previousJwtSecrets: e.JWT_SECRET_PREVIOUS.map(({ value }) => new TextEncoder().encode(value)),
    secretsKey,
    previousSecretsKeys,
    jwtExpiresSeconds: e.JWT_EXPIRES_SECONDS,
    sessionTtlSeconds: e.SESSION_TTL_SECONDS,
    tokenRecheckSeconds: e.TOKEN_RECHECK_SECONDS,
    bcryptRounds: e.BCRYPT_ROUNDS,
    login: {
      maxPerAccount: e.LOGIN_MAX_ATTEMPTS_PER_ACCOUNT,
      maxPerAccountAllClients: e.LOGIN_MAX_ATTEMPTS_PER_ACCOUNT_ALL_CLIENTS,
      maxPerClient: e.LOGIN_MAX_ATTEMPTS_PER_CLIENT,
      windowSeconds: e.LOGIN_WINDOW_SECONDS,
    },
    sessionsPerAccount: { max: e.LOGIN_MAX_SESSIONS_PER_ACCOUNT, windowSeconds: e.LOGIN_SESSIONS_WINDOW_SECONDS },
    register: {
      maxPerClient: e.REGISTER_MAX_PER_CLIENT,
      maxTotal: e.REGISTER_MAX_TOTAL,
      windowSeconds: e.REGISTER_WINDOW_SECONDS,
    },
    unknownApiKeys: { maxPerClient: e.API_KEY_MAX_UNKNOWN_PER_CLIENT, windowSeconds: e.API_KEY_UNKNOWN_WINDOW_SECONDS },
    passwordHashThreads: e.PASSWORD_HASH_THREADS,
    trustedProxies: e.TRUST_PROXY === "false" ? 0 : e.TRUST_PROXY === "true" ? 1 : Number(e.TRUST_PROXY),
    connectTimeoutMs: e.CONNECT_TIMEOUT_MS,
    query: { maxRows: e.QUERY_MAX_ROWS, maxBytes: e.QUERY_MAX_BYTES, timeoutMs: e.QUERY_TIMEOUT_MS },
    sqlGuard: { maxChars: e.QUERY_MAX_SQL_CHARS, threads: e.QUERY_PARSE_THREADS, timeoutMs: e.QUERY_PARSE_TIMEOUT_MS },
    connectionBudget: {
      concurrency: e.CONNECTION_MAX_CONCURRENCY,
      maxWaiting: e.CONNECTION_MAX_WAITING,
      perMinute: e.CONNECTION_QUERIES_PER_MINUTE,
    },
    userBudget: {
      concurrency: e.USER_MAX_CONCURRENCY,
      maxWaiting: e.USER_MAX_WAITING,
      perMinute: e.USER_QUERIES_PER_MINUTE,
    },
    targets: {
      allowNetworks: e.TARGET_ALLOW_NETWORKS,
      denyNetworks: e.TARGET_DENY_NETWORKS,
      dnsServers: e.TARGET_DNS_SERVERS,
      testsPerMinute: e.CONNECTION_TESTS_PER_MINUTE,
    },
    quotas: {
      connections: e.USER_MAX_CONNECTIONS,
      monitoredTables: e.USER_MAX_MONITORED_TABLES,
      channels: e.USER_MAX_CHANNELS,
      apiKeys: e.USER_MAX_API_KEYS,
      checkRunsPerHour: e.USER_MAX_CHECK_RUNS_PER_HOUR,
    },
    connectors: {
      poolSize: e.CONNECTION_POOL_SIZE ?? e.CONNECTION_MAX_CONCURRENCY,
      cacheMax: e.CONNECTOR_CACHE_MAX,
      idleSeconds: e.CONNECTOR_IDLE_SECONDS,
      sqliteMemoryMb: e.SQLITE_MEMORY_MB,
      schemaMaxBytes: e.SCHEMA_MAX_BYTES,
      schemaCacheMaxBytes: e.SCHEMA_CACHE_MAX_BYTES,
      schemaMaxAgeSeconds: e.SCHEMA_MAX_AGE_SECONDS,
    },
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (terminal && e.NODE_ENV !== "production" ? "pretty" : "json"),
    openai: {
      baseUrl: e.OPENAI_BASE_URL,
      apiKey: e.OPENAI_API_KEY,
      model: e.OPENAI_MODEL,
      temperature: e.OPENAI_TEMPERATURE,
      timeoutMs: e.OPENAI_TIMEOUT_MS,
      maxTokens: e.OPENAI_MAX_TOKENS,
      server: e.MODEL_SERVER,
      tools: e.MODEL_TOOLS,
      contextTokens: e.MODEL_CONTEXT_TOKENS,
    },
    agent: { maxSteps: e.AGENT_MAX_STEPS, schemaTokens: e.AGENT_SCHEMA_TOKENS, rowsToModel: e.AGENT_ROWS_TO_MODEL },
    ask: {
      timeoutMs: e.ASK_TIMEOUT_MS,
      maxQuestionChars: e.ASK_MAX_QUESTION_CHARS,
      perMinute: e.ASK_PER_MINUTE,
      maxConcurrent: e.ASK_MAX_CONCURRENT,
      tokensPerHour: e.ASK_TOKENS_PER_HOUR,
      maxTurns: e.CONVERSATION_MAX_TURNS,
      conversationTtlSeconds: e.CONVERSATION_TTL_SECONDS,
      maxNewConversations: e.CONVERSATION_MAX_NEW_PER_USER,
    },
    monitor: {
      scheduler: e.MONITOR_SCHEDULER === "on",
      tickMs: e.MONITOR_TICK_MS,
      maxConcurrency: e.MONITOR_MAX_CONCURRENCY,
      connectionConcurrency: e.MONITOR_CONNECTION_CONCURRENCY,
      queriesPerMinute: e.MONITOR_QUERIES_PER_MINUTE,
      statementTimeoutMs: e.MONITOR_STATEMENT_TIMEOUT_MS,
      slowCheckMs: e.MONITOR_SLOW_CHECK_MS,
      runTimeoutMs: e.MONITOR_RUN_TIMEOUT_MS,
      alertAfterSkips: e.MONITOR_ALERT_AFTER_SKIPS,
      leaseSeconds: e.MONITOR_LEASE_SECONDS,
      stopTimeoutMs: e.MONITOR_STOP_TIMEOUT_MS,
      retryAttempts: e.MONITOR_RETRY_ATTEMPTS,
      retryBaseMs: e.MONITOR_RETRY_BASE_MS,
      minIntervalSeconds: e.MONITOR_MIN_INTERVAL_SECONDS,
      notifyTimeoutMs: e.MONITOR_NOTIFY_TIMEOUT_MS,
      webhookAllowPrivate: e.WEBHOOK_ALLOW_PRIVATE === "true",
      runRetentionDays: e.MONITOR_RUN_RETENTION_DAYS,
      manualRunsPerMinute: e.MONITOR_MANUAL_RUNS_PER_MINUTE,
      alertActionsPerMinute: e.MONITOR_ALERT_ACTIONS_PER_MINUTE,
    },
    audit: { enabled: e.AUDIT_TRAIL === "on", retentionDays: e.AUDIT_RETENTION_DAYS, bufferRecords: e.AUDIT_BUFFER_RECORDS },
    metricsToken: e.METRICS_TOKEN,
    version: packageVersion(),
  };
}

const invalidSettings = (error: z.ZodError) => new ConfigError(error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));

/** The settings that name the metadata store. */
export type StoreConfig = Pick<Config, "dataDir" | "databaseUrl" | "storeQueryTimeoutMs">;

const storeSchema = envSchema.pick({ NODE_ENV: true, DATA_DIR: true, DATABASE_URL: true, STORE_QUERY_TIMEOUT_MS: true });

/** Only the store's settings, for `pulse migrate`: it uses no secrets, Redis or model, so it
 * neither demands them in production nor generates a secrets.json wherever it is run. */
export function loadStoreConfig(env: NodeJS.ProcessEnv = process.env): StoreConfig {
  const parsed = storeSchema.safeParse(env);
  if (!parsed.success) throw invalidSettings(parsed.error);
  const e = parsed.data;
  // Production refuses the embedded store (loadConfig): migrating one there helps no server.
  if (e.NODE_ENV === "production" && !e.DATABASE_URL) throw new ConfigError(["DATABASE_URL: required when NODE_ENV=production"]);
  return { dataDir: path.resolve(e.DATA_DIR), databaseUrl: e.DATABASE_URL, storeQueryTimeoutMs: e.STORE_QUERY_TIMEOUT_MS };
}
