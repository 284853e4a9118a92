// Structured logs (pino). Credentials, tokens and passwords are redacted wherever they appear
// in a logged object, as a net under the rule that they are never logged at all.

import { pino, type Logger } from "pino";

export type { Logger };

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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "pulse" },
      redact: {
        paths: [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), ...SECRET_KEYS.map((k) => `*.*.${k}`)],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
