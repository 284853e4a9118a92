// What one request's log line costs: Pulse's logger (src/logger.ts) against pino with nothing
// redacted (the floor) and pino redacting the same keys at the same three depths by its own
// wildcard paths (how Pulse's logger did it before), in the same run, CPU per line.
// Run: npx tsx bench/log-line.ts (LINES per round, default 100000; ROUNDS, default 7).

import { Writable } from "node:stream";

import { pino } from "pino";

import { createLogger, SECRET_KEYS } from "../src/logger.js";
import { machine, median } from "./lib.js";

const LINES = Number(process.env.LINES ?? 100_000);
const ROUNDS = Number(process.env.ROUNDS ?? 7);

const sink = () => new Writable({ write: (_chunk, _enc, done) => done() });
const loggers = {
  "pino, nothing redacted": pino({ level: "info", base: { service: "pulse" } }, sink()),
  "pino redact, wildcard paths": pino(
    {
      level: "info",
      base: { service: "pulse" },
      redact: { paths: [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), ...SECRET_KEYS.map((k) => `*.*.${k}`)], censor: "[redacted]" },
    },
    sink(),
  ),
  "Pulse's logger": createLogger("info", sink()),
};

/** CPU µs per line of LINES request lines (src/http/request-log.ts's fields). */
function round(logger: pino.Logger): number {
  const started = process.cpuUsage();
  for (let i = 0; i < LINES; i++) logger.info({ request_id: `r-${i}`, method: "POST", path: "/query", status: 200, ms: 3 }, "request");
  const used = process.cpuUsage(started);
  return (used.user + used.system) / LINES;
}

const figures = new Map<string, number[]>(Object.keys(loggers).map((name) => [name, []]));
for (const logger of Object.values(loggers)) round(logger); // warm-up
for (let r = 0; r < ROUNDS; r++) for (const [name, logger] of Object.entries(loggers)) figures.get(name)!.push(round(logger));

const floor = median(figures.get("pino, nothing redacted")!);
console.log(machine());
console.log(`| logger | CPU per request line, µs (median of ${ROUNDS} rounds of ${LINES}) | vs nothing redacted |`);
console.log("|---|---:|---:|");
for (const [name, values] of figures) console.log(`| ${name} | ${median(values).toFixed(2)} | ${(median(values) / floor).toFixed(2)}x |`);
