// Log formats: JSON lines for machines, pretty lines for a developer's terminal, and secrets
// redacted in both; the default depends on where logs go and on NODE_ENV.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";

import { loadConfig } from "../../src/config.js";
import { CONSOLE_LINES_PER_KIND, CONSOLE_WINDOW_MS } from "../../src/console-repeats.js";
import { createLogger, MAX_CONSOLE_CHARS, MAX_ERROR_TEXT_CHARS, routeConsoleTo, type LogFormat } from "../../src/logger.js";

function capture(format: LogFormat) {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger("debug", destination, format), text: () => chunks.join("") };
}

const SECRET = "hunter2-do-not-log";

describe("LOG_FORMAT", () => {
  it("json writes one object per line with the structured fields", () => {
    const { logger, text } = capture("json");
    logger.warn({ table_id: 7, check_key: "volume" }, "monitoring check failing");
    expect(JSON.parse(text())).toMatchObject({ level: 40, table_id: 7, check_key: "volume", msg: "monitoring check failing", service: "pulse" });
  });

  it("pretty writes a readable line with the level, message and fields, not JSON", () => {
    const { logger, text } = capture("pretty");
    logger.warn({ table_id: 7, check_key: "volume" }, "monitoring check failing");
    const out = text();
    expect(() => JSON.parse(out)).toThrow();
    expect(out).toMatch(/WARN.*monitoring check failing/);
    expect(out).toMatch(/table_id: 7/);
    expect(out).toMatch(/check_key: "volume"/);
  });

  it.each<LogFormat>(["json", "pretty"])("%s redacts passwords, tokens and nested credentials", (format) => {
    const { logger, text } = capture(format);
    logger.info({ password: SECRET, connection: { db_password: SECRET }, headers: { authorization: `Bearer ${SECRET}` }, user: { auth: { token: SECRET } } }, "something");
    expect(text()).not.toContain(SECRET);
    expect(text()).toContain("[redacted]");
  });

  it.each<LogFormat>(["json", "pretty"])("%s redacts the keys and their previous ones, by setting and by Config field", (format) => {
    const { logger, text } = capture(format);
    const env = { JWT_SECRET: SECRET, JWT_SECRET_PREVIOUS: `${SECRET}-1,${SECRET}-2`, SECRETS_KEY: SECRET, SECRETS_KEY_PREVIOUS: SECRET };
    const config = { jwtSecret: SECRET, previousJwtSecrets: [SECRET], secretsKey: Buffer.from(SECRET).toString("hex"), previousSecretsKeys: [Buffer.from(SECRET).toString("hex")] };
    logger.info({ env, config }, "settings");
    logger.info(env, "settings at the top");
    expect(text()).not.toContain(SECRET);
    expect(text()).not.toContain(Buffer.from(SECRET).toString("hex"));
  });

  it("json escapes what a terminal would act on, which JSON leaves as it is, and reads back the same", () => {
    const { logger, text } = capture("json");
    const name = "bob\u009b2J\u0085\u007f";
    logger.child({ request_name: "ann\u202e" }).warn({ name, values: ["\u2028", "\u2066x"] }, "query by bob\u009b2J");
    const line = text();
    expect([...line].filter((c) => /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(c))).toEqual([]);
    expect(line).toContain(String.raw`"name":"bob\u009b2J\u0085\u007f"`);
    expect(JSON.parse(line)).toMatchObject({ request_name: "ann\u202e", name, values: ["\u2028", "\u2066x"], msg: "query by bob\u009b2J" });
  });

  it("pretty writes a terminal's control characters out as \\u{…}, wherever a logged text holds them", () => {
    const { logger, text } = capture("pretty");
    // A user's name, a statement's text and an error's, as a request logs them: U+009B is a CSI
    // (it cleared the screen), U+202E turns the rest of the line around, a line break forged one.
    const err = Object.assign(new Error("near \u009b2J"), { query: "select '\u009b31m'" });
    logger
      .child({ request_name: "ann\u0085" })
      .warn({ name: "bob\u009b2J\u001b]8;;x\u0007", sql: { text: "select 1\u007f\u202e" }, values: ["\u009d", "\u2028"], err }, "query by bob\u009b2J\nINFO forged\u2066");
    const out = text();
    // Line breaks are the layout's own (fields on lines of their own, an error's stack); nothing
    // else in NOT_SHOWN (src/terminal-text.ts) reaches the terminal.
    expect([...out].filter((c) => c !== "\n" && /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u.test(c))).toEqual([]);
    for (const shown of ["query by bob\\u{9b}2J\\u{a}INFO forged\\u{2066}", "ann\\u{85}", "bob\\u{9b}2J\\u{1b}]8;;x\\u{7}", "select 1\\u{7f}\\u{202e}", "\\u{9d}", "\\u{2028}"]) {
      expect(out).toContain(shown);
    }
    // An error's fields, as pino-pretty prints them: JSON, a backslash written as two.
    expect(out).toContain(`"query": "select '\\\\u{9b}31m'"`);
    // The stack stays on its lines, as a developer reads it.
    expect(out).toMatch(/Error: near \\u\{9b\}2J\n\s+at /);
  });
});

describe("redaction", () => {
  it("reaches three levels down, arrays included, and leaves what it logged unchanged", () => {
    const { logger, text } = capture("json");
    const fields = { pools: [{ password: SECRET, host: "db" }], a: { b: { apiKey: SECRET, c: { token: "four levels down" } } } };
    logger.info(fields, "nested");
    const line = JSON.parse(text());
    expect(line.pools).toEqual([{ password: "[redacted]", host: "db" }]);
    expect(line.a.b).toEqual({ apiKey: "[redacted]", c: { token: "four levels down" } });
    expect(fields.pools[0]!.password).toBe(SECRET);
    expect(fields.a.b.apiKey).toBe(SECRET);
  });

  it("keeps a logged error's message and stack when it redacts a secret the error carries", () => {
    const { logger, text } = capture("json");
    const err = Object.assign(new Error("connect failed", { cause: { password: SECRET } }), { config: { password: SECRET, port: 5432 } });
    logger.error({ err }, "failed");
    const line = JSON.parse(text());
    expect(text()).not.toContain(SECRET);
    expect(line.err).toMatchObject({ type: "Error", message: "connect failed", config: { password: "[redacted]", port: 5432 } });
    expect(line.err.stack).toContain("connect failed");
    expect(err.config.password).toBe(SECRET);
  });

  it("redacts a child logger's bindings at their top level", () => {
    const { logger, text } = capture("json");
    logger.child({ token: SECRET, request_id: "r1" }).info("bound");
    expect(JSON.parse(text())).toMatchObject({ token: "[redacted]", request_id: "r1" });
  });
});

describe("LOG_FORMAT default", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "pulse-logfmt-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const env = (extra: Record<string, string>) => ({ DATA_DIR: dir, SECRETS_KEY: "0123456789abcdef".repeat(4), JWT_SECRET: "a-logger-test-secret-0123456789-abc", ...extra });

  it("is pretty on a terminal outside production, and json when piped or in production", () => {
    expect(loadConfig(env({ NODE_ENV: "development" }), true).logFormat).toBe("pretty");
    expect(loadConfig(env({ NODE_ENV: "development" }), false).logFormat).toBe("json");
    expect(loadConfig(env({ NODE_ENV: "production", DATABASE_URL: "postgres://x/y", REDIS_URL: "redis://x" }), true).logFormat).toBe("json");
  });

  it("follows LOG_FORMAT when set, and refuses anything else naming it", () => {
    expect(loadConfig(env({ LOG_FORMAT: "json" }), true).logFormat).toBe("json");
    expect(loadConfig(env({ LOG_FORMAT: "pretty" }), false).logFormat).toBe("pretty");
    expect(() => loadConfig(env({ LOG_FORMAT: "yaml" }))).toThrow(/LOG_FORMAT/);
  });
});

describe("routeConsoleTo", () => {
  /* eslint-disable no-console -- what a library prints is the input here */
  it("sends what libraries print through the logger, redacted and structured, and downgrades known misleading notices", () => {
    const { logger, text } = capture("json");
    const saved = { debug: console.debug, log: console.log, info: console.info, warn: console.warn, error: console.error };
    try {
      routeConsoleTo(logger);
      console.warn("pool %s: %d connections", "main", 3);
      console.error({ password: SECRET });
      console.warn("New LangChain packages are available that more efficiently handle tool calling.");
    } finally {
      Object.assign(console, saved);
    }
    const lines = text().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ level: 40, via: "console", msg: "pool main: 3 connections" });
    expect(lines[1]).toMatchObject({ level: 50, via: "console" });
    expect(text()).not.toContain(SECRET);
    expect(lines[2]).toMatchObject({ level: 20, via: "console", msg: expect.stringContaining("tool call arguments were not valid JSON") });
  });

  it("logs a few lines of each kind a minute, then says how many it left out", () => {
    const { logger, text } = capture("json");
    const saved = { debug: console.debug, log: console.log, info: console.info, warn: console.warn, error: console.error };
    let now = 0;
    try {
      routeConsoleTo(logger, () => now);
      // mysql2's warning, once per packet of a server that numbers them wrong: one kind.
      for (let i = 1; i <= 1000; i++) console.error(`Warning: got packets out of order. Expected ${i} but received ${i + 100}`);
      console.warn("another kind entirely");
      now += CONSOLE_WINDOW_MS;
      console.error("Warning: got packets out of order. Expected 7 but received 9");
    } finally {
      Object.assign(console, saved);
    }
    const lines = text().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const warnings = lines.filter((l) => String(l.msg).includes("out of order"));
    expect(warnings).toHaveLength(CONSOLE_LINES_PER_KIND + 1);
    expect(warnings.at(-1)).toMatchObject({ msg: expect.stringContaining("Expected 7"), repeats_dropped: 1000 - CONSOLE_LINES_PER_KIND });
    expect(lines.some((l) => l.msg === "another kind entirely")).toBe(true);
  });

  it("cuts a long text short, saying how much it left out", () => {
    const { logger, text } = capture("json");
    const saved = { debug: console.debug, log: console.log, info: console.info, warn: console.warn, error: console.error };
    try {
      routeConsoleTo(logger);
      console.error("Could not parse message into JSON:", "Z".repeat(1_000_000));
      console.error(new Error(`E${"e".repeat(1_000_000)}`));
    } finally {
      Object.assign(console, saved);
    }
    const lines = text().trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      const { msg } = JSON.parse(l) as { msg: string };
      expect(msg.length).toBeLessThan(MAX_CONSOLE_CHARS + 40);
      expect(msg).toMatch(/… \(\d+ more characters\)$/);
      // The error's own message and stack too, as every logged error's.
      expect(l.length).toBeLessThan(MAX_CONSOLE_CHARS + 2 * MAX_ERROR_TEXT_CHARS + 1_000);
    }
  });
  /* eslint-enable no-console */
});
