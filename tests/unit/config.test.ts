// Configuration: embedded defaults with no setting at all, generated dev secrets that
// survive restarts, and production refusing to start without explicit settings.

import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { CONFIG_VARIABLES, ConfigError, loadConfig } from "../../src/config.js";
import { StartupError } from "../../src/startup-error.js";

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), "pulse-config-"));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const errorOf = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
};

describe("loadConfig", () => {
  it("serves on embedded defaults with no setting at all", () => {
    const dataDir = tempDir();
    const config = loadConfig({ DATA_DIR: dataDir });
    expect(config.port).toBe(8000);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.sqliteRoot).toBe(path.join(dataDir, "sqlite"));
    expect(config.secretsKey).toHaveLength(32);
    expect(config.jwtExpiresSeconds).toBe(86400);
  });

  it("generates dev secrets once, private to the owner, and reuses them on restart", () => {
    const dataDir = tempDir();
    const first = loadConfig({ DATA_DIR: dataDir });
    const second = loadConfig({ DATA_DIR: dataDir });
    expect(second.secretsKey.equals(first.secretsKey)).toBe(true);
    expect(Buffer.from(second.jwtSecret).equals(Buffer.from(first.jwtSecret))).toBe(true);
    const file = path.join(dataDir, "secrets.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toHaveProperty("secretsKey");
  });

  it("reads the network policy's ranges and DNS servers, and names a malformed one", () => {
    const config = loadConfig({ DATA_DIR: tempDir(), TARGET_ALLOW_NETWORKS: "10.0.0.0/8, fd00::/8,192.0.2.7", TARGET_DNS_SERVERS: "10.0.0.2,[fd00::53]:5353" });
    expect(config.targets.allowNetworks).toEqual([
      { address: "10.0.0.0", prefix: 8, family: "ipv4" },
      { address: "fd00::", prefix: 8, family: "ipv6" },
      { address: "192.0.2.7", prefix: 32, family: "ipv4" },
    ]);
    expect(config.targets.denyNetworks).toEqual([]);
    expect(config.targets.dnsServers).toEqual(["10.0.0.2", "[fd00::53]:5353"]);
    for (const [name, value] of [
      ["TARGET_DENY_NETWORKS", "10.0.0.0/33"],
      ["TARGET_DENY_NETWORKS", "example.com"],
      ["TARGET_ALLOW_NETWORKS", "10.0.0.0/8/8"],
      ["TARGET_DNS_SERVERS", "dns.example"],
    ] as const) {
      expect(errorOf(() => loadConfig({ DATA_DIR: tempDir(), [name]: value })).message).toContain(name);
    }
  });

  it("reads the model server settings, and refuses unknown servers, protocols and tiny context windows with one line each", () => {
    const config = loadConfig({ DATA_DIR: tempDir(), MODEL_SERVER: "llama-cpp-python", MODEL_TOOLS: "text", MODEL_CONTEXT_TOKENS: "4096" });
    expect(config.openai).toMatchObject({ server: "llama-cpp-python", tools: "text", contextTokens: 4096 });
    expect(loadConfig({ DATA_DIR: tempDir() }).openai).toMatchObject({ server: "auto", tools: "auto", contextTokens: undefined });
    const err = errorOf(() => loadConfig({ DATA_DIR: tempDir(), MODEL_SERVER: "llama.cpp", MODEL_TOOLS: "json", MODEL_CONTEXT_TOKENS: "512" }));
    expect(err.problems).toEqual([
      "MODEL_SERVER: must be one of auto, openai, azure, ollama, llamacpp, llama-cpp-python, vllm, lmstudio, litellm",
      "MODEL_TOOLS: must be one of auto, native, text",
      expect.stringMatching(/^MODEL_CONTEXT_TOKENS: .*1024/),
    ]);
  });

  it("refuses to start in production without secrets, DATABASE_URL and REDIS_URL, naming each", () => {
    const err = errorOf(() => loadConfig({ NODE_ENV: "production", DATA_DIR: tempDir() }));
    for (const name of ["JWT_SECRET", "SECRETS_KEY", "DATABASE_URL", "REDIS_URL"]) {
      expect(err.message).toContain(name);
    }
    expect(err.problems).toHaveLength(4);
  });

  it("starts in production when everything is given explicitly", () => {
    const config = loadConfig({
      NODE_ENV: "production",
      DATA_DIR: tempDir(),
      JWT_SECRET: "a-production-secret-0123456789-abcdef",
      SECRETS_KEY: "0123456789abcdef".repeat(4),
      DATABASE_URL: "postgresql://pulse@db/pulse",
      REDIS_URL: "redis://cache:6379",
    });
    expect(config.env).toBe("production");
    expect(config.secretsKey.toString("hex")).toBe("0123456789abcdef".repeat(4));
  });

  it("refuses placeholder secrets in production, saying how to make real ones", () => {
    const production = { NODE_ENV: "production", DATA_DIR: tempDir(), DATABASE_URL: "postgresql://pulse@db/pulse", REDIS_URL: "redis://cache:6379" };
    const err = errorOf(() => loadConfig({ ...production, JWT_SECRET: "changeme".repeat(4), SECRETS_KEY: "0".repeat(64) }));
    expect(err.problems).toEqual([
      "JWT_SECRET: too plain to be a secret (fewer than 8 different characters); generate one, such as with `openssl rand -base64 48`",
      "SECRETS_KEY: too plain to be a key (fewer than 8 different bytes); generate one, such as with `openssl rand -hex 32`",
    ]);
    // Spaces alone are no value at all: missing.
    expect(errorOf(() => loadConfig({ ...production, JWT_SECRET: " ".repeat(32), SECRETS_KEY: "0123456789abcdef".repeat(4) })).problems).toEqual([
      "JWT_SECRET: required when NODE_ENV=production",
    ]);
  });

  it("names every production problem in one go, missing settings and plain secrets alike", () => {
    const err = errorOf(() => loadConfig({ NODE_ENV: "production", DATA_DIR: tempDir(), DATABASE_URL: "postgresql://pulse@db/pulse", JWT_SECRET: "changeme".repeat(4), SECRETS_KEY: "0".repeat(64) }));
    expect(err.problems).toEqual([
      "REDIS_URL: required when NODE_ENV=production",
      "JWT_SECRET: too plain to be a secret (fewer than 8 different characters); generate one, such as with `openssl rand -base64 48`",
      "SECRETS_KEY: too plain to be a key (fewer than 8 different bytes); generate one, such as with `openssl rand -hex 32`",
    ]);
  });

  it("tells a store `pulse migrate` made from none at all, for the commands that need one", () => {
    const dataDir = tempDir();
    expect(errorOf(() => loadConfig({ DATA_DIR: dataDir }, false, { existingStore: true })).problems).toEqual([
      `DATA_DIR: no Pulse store at ${dataDir} (${path.join(dataDir, "secrets.json")} and ${path.join(dataDir, "pglite")} missing): run this with the server's settings (its DATA_DIR, or DATABASE_URL with JWT_SECRET and SECRETS_KEY)`,
    ]);
    mkdirSync(path.join(dataDir, "pglite"));
    expect(errorOf(() => loadConfig({ DATA_DIR: dataDir }, false, { existingStore: true })).problems).toEqual([
      `DATA_DIR: the store at ${dataDir} has no secrets.json yet (the server writes it when it first starts there; \`pulse migrate\` does not): start the server once, or give JWT_SECRET and SECRETS_KEY`,
    ]);
  });

  it("reads numbers only as digits: no blank as 0, no hex or exponent", () => {
    expect(loadConfig({ DATA_DIR: tempDir(), PORT: " 8123 ", SQLITE_MEMORY_MB: "  " })).toMatchObject({ port: 8123 });
    expect(loadConfig({ DATA_DIR: tempDir(), SQLITE_MEMORY_MB: "\t" }).connectors.sqliteMemoryMb).toBe(loadConfig({ DATA_DIR: tempDir() }).connectors.sqliteMemoryMb);
    for (const [name, value] of [
      ["PORT", "0x1F40"],
      ["PORT", "1e4"],
      ["PORT", "-1"],
      ["QUERY_TIMEOUT_MS", "30s"],
      ["CONNECTION_MAX_WAITING", "1.5"],
      ["OPENAI_TEMPERATURE", "0x1"],
      ["OPENAI_TEMPERATURE", "-0.5"],
    ] as const) {
      expect(errorOf(() => loadConfig({ DATA_DIR: tempDir(), [name]: value })).problems, `${name}=${value}`).toEqual([expect.stringMatching(new RegExp(`^${name}: must be a (whole )?number written in digits`))]);
    }
    expect(loadConfig({ DATA_DIR: tempDir(), OPENAI_TEMPERATURE: "0.2" }).openai).toMatchObject({ temperature: 0.2 });
  });

  it("refuses a REDIS_URL whose database is not a number, and MONITOR_STOP_TIMEOUT_MS past what stopping allows", () => {
    expect(errorOf(() => loadConfig({ DATA_DIR: tempDir(), REDIS_URL: "redis://127.0.0.1:6379/abc" })).problems).toEqual([
      "REDIS_URL: must name its database by number (such as redis://host:6379/0), or none",
    ]);
    for (const url of ["redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/3"]) expect(loadConfig({ DATA_DIR: tempDir(), REDIS_URL: url }).redisUrl).toBe(url);
    expect(errorOf(() => loadConfig({ DATA_DIR: tempDir(), MONITOR_STOP_TIMEOUT_MS: "600000" })).problems).toEqual([expect.stringMatching(/^MONITOR_STOP_TIMEOUT_MS: .*8000/)]);
  });

  it("reads METRICS_TOKEN without the spaces around it, and refuses one with spaces inside, which no Bearer header carries", () => {
    expect(loadConfig({ DATA_DIR: tempDir(), METRICS_TOKEN: " scrape-token-0123456789\n" }).metricsToken).toBe("scrape-token-0123456789");
    expect(errorOf(() => loadConfig({ DATA_DIR: tempDir(), METRICS_TOKEN: "scrape token 0123456789" })).problems).toEqual([expect.stringMatching(/^METRICS_TOKEN: must not contain spaces/)]);
  });

  it("names every invalid variable at once", () => {
    const err = errorOf(() =>
      loadConfig({
        DATA_DIR: tempDir(),
        PORT: "eighty",
        SECRETS_KEY: "too-short",
        JWT_SECRET: "short",
        DATABASE_URL: "mysql://x",
        REDIS_URL: "http://x",
        OPENAI_BASE_URL: "not a url",
      }),
    );
    for (const name of ["PORT", "SECRETS_KEY", "JWT_SECRET", "DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL"]) {
      expect(err.message).toContain(name);
    }
  });

  it("refuses one schema allowed more room than all of them together", () => {
    const err = errorOf(() => loadConfig({ DATA_DIR: tempDir(), SCHEMA_MAX_BYTES: "2000000", SCHEMA_CACHE_MAX_BYTES: "1000000" }));
    expect(err.message).toContain("SCHEMA_MAX_BYTES: must be at most SCHEMA_CACHE_MAX_BYTES (1000000)");
    expect(loadConfig({ DATA_DIR: tempDir(), SCHEMA_MAX_BYTES: "1000000", SCHEMA_CACHE_MAX_BYTES: "1000000" }).connectors.schemaMaxBytes).toBe(1_000_000);
  });

  it("reads a kept schema again past SCHEMA_MAX_AGE_SECONDS, an hour unless told, at least a second", () => {
    expect(loadConfig({ DATA_DIR: tempDir() }).connectors.schemaMaxAgeSeconds).toBe(3600);
    expect(loadConfig({ DATA_DIR: tempDir(), SCHEMA_MAX_AGE_SECONDS: "60" }).connectors.schemaMaxAgeSeconds).toBe(60);
    expect(loadConfig({ DATA_DIR: tempDir(), SCHEMA_MAX_AGE_SECONDS: "" }).connectors.schemaMaxAgeSeconds).toBe(3600);
    for (const bad of ["0", "-1", "1.5", "soon", String(30 * 86_400 + 1)]) {
      expect(errorOf(() => loadConfig({ DATA_DIR: tempDir(), SCHEMA_MAX_AGE_SECONDS: bad })).message).toContain("SCHEMA_MAX_AGE_SECONDS");
    }
  });

  it("sizes pools for the statements a database's budget lets run, and refuses fewer sockets than that", () => {
    expect(loadConfig({ DATA_DIR: tempDir() }).connectors.poolSize).toBe(4);
    expect(loadConfig({ DATA_DIR: tempDir(), CONNECTION_MAX_CONCURRENCY: "12" }).connectors.poolSize).toBe(12);
    expect(loadConfig({ DATA_DIR: tempDir(), CONNECTION_MAX_CONCURRENCY: "2", CONNECTION_POOL_SIZE: "6" }).connectors.poolSize).toBe(6);
    // Fewer, and interactive reads would queue for a socket ahead of monitoring's checks.
    const err = errorOf(() => loadConfig({ DATA_DIR: tempDir(), CONNECTION_POOL_SIZE: "1" }));
    expect(err.message).toContain("CONNECTION_POOL_SIZE: must be at least CONNECTION_MAX_CONCURRENCY (4); to hold fewer connections to a database, lower CONNECTION_MAX_CONCURRENCY");
  });

  it("refuses headers allowed longer than the whole request (Node would not start the server)", () => {
    const err = errorOf(() => loadConfig({ DATA_DIR: tempDir(), HTTP_HEADERS_TIMEOUT_MS: "30000", HTTP_REQUEST_TIMEOUT_MS: "20000" }));
    expect(err.message).toContain("HTTP_HEADERS_TIMEOUT_MS: must be at most HTTP_REQUEST_TIMEOUT_MS (20000)");
    expect(loadConfig({ DATA_DIR: tempDir() })).toMatchObject({ headersTimeoutMs: 20_000, requestTimeoutMs: 60_000 });
  });

  it("accepts a base64 SECRETS_KEY and treats empty variables as unset", () => {
    const key = Buffer.alloc(32, 7).toString("base64");
    const config = loadConfig({ DATA_DIR: tempDir(), SECRETS_KEY: key, JWT_SECRET: "j".repeat(32), PORT: "", REDIS_URL: "" });
    expect(config.secretsKey.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(config.port).toBe(8000);
    expect(config.redisUrl).toBeUndefined();
  });
});

describe("SECRETS_KEY_PREVIOUS and JWT_SECRET_PREVIOUS (rotation)", () => {
  const KEY = "0123456789abcdef".repeat(4);
  const JWT = "a-current-jwt-secret-0123456789-abcdef";
  const OLD_KEY = randomBytes(32);
  const OLD_JWT = randomBytes(32).toString("base64url");
  const env = (extra: Record<string, string>) => ({ DATA_DIR: tempDir(), SECRETS_KEY: KEY, JWT_SECRET: JWT, ...extra });

  it("are none unless set, and read comma-separated lists in each one's format", () => {
    expect(loadConfig(env({ SECRETS_KEY_PREVIOUS: "", JWT_SECRET_PREVIOUS: " " }))).toMatchObject({ previousSecretsKeys: [], previousJwtSecrets: [] });
    const older = randomBytes(32);
    const config = loadConfig(env({ SECRETS_KEY_PREVIOUS: `${OLD_KEY.toString("hex")}, ${older.toString("base64")}`, JWT_SECRET_PREVIOUS: ` ${OLD_JWT} ,${"j".repeat(32)}` }));
    expect(config.previousSecretsKeys.map((k) => k.toString("hex"))).toEqual([OLD_KEY.toString("hex"), older.toString("hex")]);
    expect(config.previousJwtSecrets.map((s) => new TextDecoder().decode(s))).toEqual([OLD_JWT, "j".repeat(32)]);
    // The current ones still seal and sign.
    expect(config.secretsKey.toString("hex")).toBe(KEY);
  });

  it("refuses an item not in its setting's format, naming the setting and the item's place, never its value", () => {
    const badKey = "not-a-key-but-a-secret-value";
    const badJwt = "short-jwt-value";
    const err = errorOf(() => loadConfig(env({ SECRETS_KEY_PREVIOUS: `${OLD_KEY.toString("hex")},${badKey}`, JWT_SECRET_PREVIOUS: `${badJwt},${OLD_JWT}` })));
    expect(err.problems).toEqual([
      "JWT_SECRET_PREVIOUS: item 1 of 2 must be at least 32 characters, as JWT_SECRET",
      "SECRETS_KEY_PREVIOUS: item 2 of 2 must be 32 bytes, as 64 hex characters or base64, as SECRETS_KEY",
    ]);
    expect(err.message).not.toContain(badKey);
    expect(err.message).not.toContain(badJwt);
  });

  it("names an item by its place as written, empty fields counted: in a,,b the third", () => {
    const key = Buffer.from(KEY, "hex");
    const err = errorOf(() =>
      loadConfig(env({ SECRETS_KEY_PREVIOUS: `${OLD_KEY.toString("hex")},,${key.toString("base64")},`, JWT_SECRET_PREVIOUS: `,${OLD_JWT}, ,short-jwt-value` })),
    );
    expect(err.problems).toEqual(["JWT_SECRET_PREVIOUS: item 4 of 4 must be at least 32 characters, as JWT_SECRET"]);
    expect(errorOf(() => loadConfig(env({ SECRETS_KEY_PREVIOUS: `${OLD_KEY.toString("hex")},,${key.toString("base64")},` }))).problems).toEqual([
      "SECRETS_KEY_PREVIOUS: item 3 of 4 is the current SECRETS_KEY; list only keys it replaced",
    ]);
    // Empty fields are no items: a trailing comma is fine.
    expect(loadConfig(env({ SECRETS_KEY_PREVIOUS: `,${OLD_KEY.toString("hex")},`, JWT_SECRET_PREVIOUS: `${OLD_JWT},` }))).toMatchObject({ previousSecretsKeys: [OLD_KEY] });
  });

  it("refuses the current key or secret listed as a previous one, in any spelling, without echoing it", () => {
    const key = Buffer.from(KEY, "hex");
    const err = errorOf(() => loadConfig(env({ SECRETS_KEY_PREVIOUS: `${OLD_KEY.toString("hex")},${key.toString("base64")}`, JWT_SECRET_PREVIOUS: JWT })));
    expect(err.problems).toEqual([
      "JWT_SECRET_PREVIOUS: item 1 of 1 is the current JWT_SECRET; list only secrets it replaced",
      "SECRETS_KEY_PREVIOUS: item 2 of 2 is the current SECRETS_KEY; list only keys it replaced",
    ]);
    expect(err.message).not.toContain(JWT);
    expect(err.message).not.toContain(key.toString("base64"));
    // The generated ones (no SECRETS_KEY or JWT_SECRET given) are current too.
    const dir = tempDir();
    const generated = loadConfig({ DATA_DIR: dir });
    const again = errorOf(() =>
      loadConfig({ DATA_DIR: dir, SECRETS_KEY_PREVIOUS: generated.secretsKey.toString("hex"), JWT_SECRET_PREVIOUS: new TextDecoder().decode(generated.jwtSecret) }),
    );
    expect(again.problems).toHaveLength(2);
  });

  it("in production, refuses a plain previous JWT secret (it still verifies tokens) but not a plain previous key (rotating away from it needs it)", () => {
    const production = env({ NODE_ENV: "production", DATABASE_URL: "postgresql://pulse@db/pulse", REDIS_URL: "redis://cache:6379" });
    expect(errorOf(() => loadConfig({ ...production, JWT_SECRET_PREVIOUS: `${OLD_JWT},${"changeme".repeat(4)}` })).problems).toEqual([
      "JWT_SECRET_PREVIOUS: item 2 of 2 is too plain to be a secret (fewer than 8 different characters)",
    ]);
    expect(loadConfig({ ...production, SECRETS_KEY_PREVIOUS: "0".repeat(64) }).previousSecretsKeys).toEqual([Buffer.alloc(32)]);
  });
});

describe("generated secrets ($DATA_DIR/secrets.json)", () => {
  const startWith = (content: string) => {
    const dataDir = tempDir();
    writeFileSync(path.join(dataDir, "secrets.json"), content);
    return () => loadConfig({ DATA_DIR: dataDir });
  };
  const usable = { jwtSecret: "j".repeat(32), secretsKey: "a".repeat(64) };

  it.each([
    ["empty (a crash between creating and writing it)", "", /it is empty/],
    ["cut short", '{"jwtSecret":', /it is not JSON/],
    ["null", "null", /jwtSecret is not a string/],
    ["an object without keys", "{}", /jwtSecret is not a string/],
    ["a JWT key of one character", JSON.stringify({ ...usable, jwtSecret: "x" }), /jwtSecret is not a string of at least 32 characters/],
    ["a sealing key of the wrong size", JSON.stringify({ ...usable, secretsKey: "abcd" }), /secretsKey is not 32 bytes/],
  ])("refuses a file that is %s, in one line saying what to do and what deleting it costs", (_what, content, problem) => {
    const start = startWith(content);
    expect(start).toThrow(StartupError);
    expect(start).toThrow(problem);
    expect(start).toThrow(/^DATA_DIR: \/\S+\/secrets\.json does not hold usable generated secrets .*delete it to have new ones made \(.*stored connection passwords become unreadable/);
    expect(start).not.toThrow(/\n/);
  });

  it("uses a file holding two usable keys", () => {
    const config = startWith(JSON.stringify(usable))();
    expect(config.secretsKey.equals(Buffer.from(usable.secretsKey, "hex"))).toBe(true);
  });

  it("writes the file whole under a name of its own, leaving nothing else behind", () => {
    const dataDir = tempDir();
    loadConfig({ DATA_DIR: dataDir });
    expect(readdirSync(dataDir)).toEqual(["secrets.json"]);
  });

  it("names DATA_DIR, the path and the reason when DATA_DIR is a file", () => {
    const file = path.join(tempDir(), "data");
    writeFileSync(file, "not a directory");
    const start = () => loadConfig({ DATA_DIR: file });
    expect(start).toThrow(StartupError);
    expect(start).toThrow(new RegExp(`^DATA_DIR: cannot read ${file}/secrets\\.json \\(a part of the path is a file, not a directory\\); point DATA_DIR at a directory`));
  });
});

describe("REDIS_PREFIX", () => {
  const withPrefix = (prefix?: string) => loadConfig({ DATA_DIR: tempDir(), SECRETS_KEY: "a".repeat(64), JWT_SECRET: "j".repeat(32), ...(prefix !== undefined && { REDIS_PREFIX: prefix }) });

  it("puts every deployment under pulse: unless told otherwise", () => {
    expect(withPrefix().redisPrefix).toBe("pulse:");
    expect(withPrefix("").redisPrefix).toBe("pulse:");
    expect(withPrefix("pulse-staging:").redisPrefix).toBe("pulse-staging:");
  });

  it.each([["a space", "pulse staging:"], ["a glob character", "pulse*"], ["too long", "p".repeat(65)]])("refuses a prefix with %s, naming REDIS_PREFIX", (_what, prefix) => {
    expect(errorOf(() => withPrefix(prefix)).message).toContain("REDIS_PREFIX");
  });
});

describe(".env.example", () => {
  it("documents every setting the service reads", () => {
    const example = readFileSync(new URL("../../.env.example", import.meta.url), "utf8");
    const missing = CONFIG_VARIABLES.filter((name) => !new RegExp(`^#? ?${name}=`, "m").test(example));
    expect(missing).toEqual([]);
  });
});
