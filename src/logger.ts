// Structured logs (pino). Credentials, tokens and passwords are redacted wherever they appear
// in a logged object, as a net under the rule that they are never logged at all. JSON lines
// for machines; "pretty" for a developer's terminal, redacted the same way (pino redacts
// before either format sees the line); in both, what a terminal would act on written out.

import { createRequire } from "node:module";
import { format } from "node:util";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";

import { consoleRepeats, kindOf } from "./console-repeats.js";
import { shownLines, shownText, terminalSafeJson } from "./terminal-text.js";
import { cutText } from "./text-cut.js";

export type { Logger };

/** LOG_FORMAT: one JSON object per line, or coloured human-readable lines (pino-pretty). */
export type LogFormat = "json" | "pretty";

export const SECRET_KEYS = [
  "password",
  "db_password",
  "passwordSealed",
  "password_sealed",
  "access_token",
  "token",
  "authorization",
  "connection_string",
  // The keys, under their settings' names and Config's (rotation's previous ones included).
  "JWT_SECRET",
  "JWT_SECRET_PREVIOUS",
  "SECRETS_KEY",
  "SECRETS_KEY_PREVIOUS",
  "jwtSecret",
  "previousJwtSecrets",
  "secretsKey",
  "previousSecretsKeys",
  "apiKey",
];

const SECRET_KEY_SET = new Set(SECRET_KEYS);
const CENSOR = "[redacted]";
/** How deep in a logged object a secret's key is found: the object's own keys, and those of the
 * objects (and arrays) it holds, and of theirs. */
const SECRET_DEPTH = 3;

/** `fields` with the value of every SECRET_KEYS key within SECRET_DEPTH replaced by "[redacted]":
 * the objects on the way to one copied, the rest shared, nothing logged changed. */
function withoutSecrets<T extends object>(fields: T): T {
  return censored(fields, SECRET_DEPTH) as T;
}

function censored(value: unknown, depth: number): unknown {
  // A Buffer's or typed array's keys are its indices: bytes hold no keys to redact.
  if (depth === 0 || value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const kept = censored(value[i], depth - 1);
      if (kept !== value[i]) (copy ??= [...value])[i] = kept;
    }
    return copy ?? value;
  }
  // An error's message, stack and cause are its own but not enumerable.
  const keys = value instanceof Error ? Object.getOwnPropertyNames(value) : Object.keys(value);
  let copy: Record<string, unknown> | undefined;
  for (const key of keys) {
    const field = (value as Record<string, unknown>)[key];
    const kept = SECRET_KEY_SET.has(key) ? CENSOR : censored(field, depth - 1);
    if (kept === field) continue;
    // A copy with the original's prototype and properties: an error stays an error for the
    // serializer, with its message and stack.
    copy ??= Object.defineProperties(Object.create(Object.getPrototypeOf(value) as object | null), Object.getOwnPropertyDescriptors(value)) as Record<string, unknown>;
    Object.defineProperty(copy, key, { value: kept, enumerable: true, writable: true, configurable: true });
  }
  return copy ?? value;
}

/** Where a query error (drizzle's "Failed query: ...\nparams: ...") lists its bound values. */
const BOUND_VALUES_IN_MESSAGE = /\nparams: [\s\S]*$/;
const BOUND_VALUES_IN_STACK = /\nparams: [\s\S]*?(?=\n {4}at |$)/;

/** The most of a logged error's message, and of its stack, one line keeps: an error's text can
 * quote what a server or a library was sent (a library's Error printed to the console, below). */
export const MAX_ERROR_TEXT_CHARS = 8_000;

/** A logged error without the bound values of the statement that failed: they can be a
 * password's hash, an API key's digest, a user's text. The statement itself stays, cut as its
 * message and stack are to MAX_ERROR_TEXT_CHARS. */
export function errWithoutBoundValues(err: Error): unknown {
  const scrub = (e: Record<string, unknown>, depth: number): Record<string, unknown> => {
    const { params: _params, ...kept } = e;
    if (typeof kept.message === "string") kept.message = cutText(kept.message.replace(BOUND_VALUES_IN_MESSAGE, ""), MAX_ERROR_TEXT_CHARS);
    if (typeof kept.stack === "string") kept.stack = cutText(kept.stack.replace(BOUND_VALUES_IN_STACK, ""), MAX_ERROR_TEXT_CHARS);
    if (kept.cause && typeof kept.cause === "object" && depth < 4) kept.cause = scrub(kept.cause as Record<string, unknown>, depth + 1);
    return kept;
  };
  const serialized = pino.stdSerializers.err(err);
  return serialized && typeof serialized === "object" ? scrub(serialized as unknown as Record<string, unknown>, 0) : serialized;
}

/** `destination`: stdout unless given (tests capture lines; the CLI logs to stderr). */
export function createLogger(level: string, destination?: pino.DestinationStream, format: LogFormat = "json"): Logger {
  return pino(
    {
      level,
      base: { service: "pulse" },
      serializers: { err: errWithoutBoundValues },
      // pino's `redact` for the keys at the top (a child logger's bindings included, which no
      // formatter sees), withoutSecrets for the levels below: pino's paths starting with a
      // wildcard (`*.password`, `*.*.password`) cost 47 µs a line, every top-level value, a
      // number or a string too, going through each of them: a request's one line was a fifth
      // of /query's CPU. Both together cost about 2 µs on such a line.
      redact: { paths: SECRET_KEYS, censor: CENSOR },
      formatters: { log: withoutSecrets },
    },
    format === "pretty" ? prettyStream(destination) : jsonStream(destination),
  );
}

/** pino's lines with what a terminal would act on escaped (terminal-text.ts): JSON escapes C0
 * alone, so a user's name or a statement's text carrying U+009B (a CSI) or a text-direction
 * mark reached the terminal of whoever read the logs (`docker logs`, `kubectl logs`) as it was.
 * The escape is the same JSON string; a line without such a character is written unchanged. */
function jsonStream(destination: pino.DestinationStream | undefined): pino.DestinationStream {
  // Synchronous, like pino's own stdout: nothing logged before an exit is lost.
  const out = destination ?? pino.destination({ dest: 1, sync: true });
  return { write: (line: string) => out.write(terminalSafeJson(line)) };
}

/** Loaded only when asked for: a JSON deployment does not pay for the prettifier at start. */
function prettyStream(destination: pino.DestinationStream | undefined): pino.DestinationStream {
  const { prettyFactory, isColorSupported } = createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
  const prettify = prettyFactory({
    colorize: destination === undefined && isColorSupported,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,service",
  });
  // Synchronous, like pino's own stdout: nothing logged before an exit is lost.
  const out = destination ?? pino.destination({ dest: 1, sync: true });
  // pino-pretty prints a field's value as JSON, which leaves C1 (U+009B is a CSI), DEL and the
  // text-direction marks as they are, and a message as it is, line breaks included: a user's
  // name or a statement's text, logged, drove the terminal. So every text of the line is first
  // written out as the CLI writes it (terminal-text.ts); pino's line is JSON, always.
  return { write: (line: string) => out.write(prettify(shownStrings(JSON.parse(line)))) };
}

/** `value` with every string in it, and every key, as shownText writes it; a stack keeps its
 * line breaks, the lines pino-pretty prints it on. */
function shownStrings(value: unknown, key?: string): unknown {
  if (typeof value === "string") return key === "stack" ? shownLines(value) : shownText(value);
  if (Array.isArray(value)) return value.map((v) => shownStrings(v));
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [shownText(k), shownStrings(v, k)]));
}

/** Library notices known to mislead an operator, logged at debug with what they mean here. */
const KNOWN_NOTICES: [RegExp, string][] = [
  // @langchain/core says this whenever a server's tool call arguments did not parse as JSON;
  // the agent answers such a call with an error and never runs it (agents/tool-arguments.ts).
  [/^New LangChain packages are available/, "a model's tool call arguments were not valid JSON (LangChain's upgrade notice)"],
];

/** The most of a library's console text one line keeps: the OpenAI SDK prints a streamed event
 * it cannot parse whole, and a model server made that a line of a megabyte. */
export const MAX_CONSOLE_CHARS = 2_000;

/** Sends what libraries write to the console (LangChain, drivers) through `logger`, so every line
 * the process writes is structured and redacted like the rest; a few of each kind a minute
 * (console-repeats.ts), each cut to MAX_CONSOLE_CHARS. `now`: the clock, injected for tests. */
export function routeConsoleTo(logger: Logger, now: () => number = Date.now): void {
  const repeats = consoleRepeats(now);
  /** Whether a line of `kind` is logged, and the fields that say how many like it were not. */
  const admit = (kind: string) => {
    const { log, dropped } = repeats(kind);
    return log ? { via: "console", ...(dropped > 0 ? { repeats_dropped: dropped } : {}) } : null;
  };
  const line = (level: "debug" | "info" | "warn" | "error") => (...args: unknown[]) => {
    // An object alone goes as a field, where redaction reaches it; text is as the library wrote it.
    const [only] = args;
    if (args.length === 1 && typeof only === "object" && only !== null) {
      const fields = admit(only instanceof Error ? kindOf(`${only.name}: ${only.message}`) : `object: ${Object.keys(only).slice(0, 10).join(",")}`);
      if (!fields) return;
      if (only instanceof Error) logger[level]({ ...fields, err: only }, cutText(only.message, MAX_CONSOLE_CHARS));
      else logger[level]({ ...fields, value: only }, "console output");
      return;
    }
    const text = format(...args);
    const fields = admit(kindOf(text));
    if (!fields) return;
    const known = KNOWN_NOTICES.find(([re]) => re.test(text));
    if (known) logger.debug({ ...fields, notice: text.slice(0, 200) }, known[1]);
    else logger[level](fields, cutText(text, MAX_CONSOLE_CHARS));
  };
  /* eslint-disable no-console -- replacing the console's methods is the point */
  console.debug = line("debug");
  console.log = line("info");
  console.info = line("info");
  console.warn = line("warn");
  console.error = line("error");
  /* eslint-enable no-console */
}
