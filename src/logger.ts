// Structured logs (pino). Credentials, tokens and passwords are redacted wherever they appear
// in a logged object, as a net under the rule that they are never logged at all. JSON lines
// for machines; "pretty" for a developer's terminal, redacted the same way (pino redacts
// before either format sees the line).

import { createRequire } from "node:module";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";

export type { Logger };

/** LOG_FORMAT: one JSON object per line, or coloured human-readable lines (pino-pretty). */
export type LogFormat = "json" | "pretty";

const SECRET_KEYS = [
  "password",
  "db_password",
  "passwordSealed",
  "password_sealed",
  "access_token",
  "token",
  "authorization",
  "connection_string",
  "jwtSecret",
  "secretsKey",
  "apiKey",
];

/** `destination`: stdout unless given (tests capture lines; the CLI logs to stderr). */
export function createLogger(level: string, destination?: pino.DestinationStream, format: LogFormat = "json"): Logger {
  return pino(
    {
      level,
      base: { service: "pulse" },
      redact: {
        paths: [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), ...SECRET_KEYS.map((k) => `*.*.${k}`)],
        censor: "[redacted]",
      },
    },
    format === "pretty" ? prettyStream(destination) : destination,
  );
}

/** Loaded only when asked for: a JSON deployment does not pay for the prettifier at start. */
function prettyStream(destination: pino.DestinationStream | undefined): pino.DestinationStream {
  const pretty = createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
  return pretty({
    destination: destination ?? 1,
    // Synchronous, like pino's own stdout: nothing logged before an exit is lost.
    sync: true,
    colorize: destination === undefined && pretty.isColorSupported,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,service",
  });
}
