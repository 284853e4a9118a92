// What the SQL guard costs per statement: `npx tsx bench/guard.ts`. Times classifyStatement
// on Spider's SQLite gold queries, the Spiderman MySQL queries and our PostgreSQL read list.

import { readFileSync } from "node:fs";
import os from "node:os";
import { classifyStatement, loadGuard } from "../src/connectors/guard/index.js";
import type { Dialect } from "../src/connectors/types.js";
import { LEGITIMATE_READS } from "../tests/support/hostile-corpus.js";

const SPIDER_GOLD = new URL("../../shared/data/spider_dev/spider_data/dev_gold.sql", import.meta.url);
const SPIDERMAN_MYSQL = new URL("../../shared/data/spiderman/dataset_mysql/test_queries.csv", import.meta.url);
/** The PEG parser needs a few passes before V8 has optimised it; we report the steady state. */
const WARMUP_ROUNDS = 3;
const ROUNDS = 10;

/** Enough CSV for the one file we read: quoted fields with commas and doubled quotes. */
function csvColumn(text: string, name: string): string[] {
  const rows: string[][] = [[]];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    const row = rows[rows.length - 1] ?? [];
    if (quoted && char === '"' && text[i + 1] === '"') {
      field += '"';
      i++;
    } else if (char === '"') quoted = !quoted;
    else if (!quoted && char === ",") {
      row.push(field);
      field = "";
    } else if (!quoted && char === "\n") {
      row.push(field);
      field = "";
      rows.push([]);
    } else if (char !== "\r" || quoted) field += char;
  }
  rows[rows.length - 1]?.push(field);
  const [header, ...body] = rows.filter((row) => row.some((cell) => cell !== ""));
  const index = header?.indexOf(name) ?? -1;
  return body.map((row) => row[index] ?? "");
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? Number.NaN;
}

function time(label: string, dialect: Dialect, queries: readonly string[]): void {
  let refused = 0;
  for (const sql of queries) if (!classifyStatement(dialect, sql).ok) refused++;
  for (let round = 1; round < WARMUP_ROUNDS; round++) for (const sql of queries) classifyStatement(dialect, sql);
  const samples: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const sql of queries) {
      const start = process.hrtime.bigint();
      classifyStatement(dialect, sql);
      samples.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  }
  samples.sort((a, b) => a - b);
  const cells = [
    label.padEnd(28),
    `${queries.length} stmts`.padStart(11),
    `median ${percentile(samples, 0.5).toFixed(0)} µs`.padStart(16),
    `p99 ${percentile(samples, 0.99).toFixed(0)} µs`.padStart(14),
    `max ${samples[samples.length - 1]?.toFixed(0)} µs`.padStart(14),
    refused > 0 ? `  (${refused} refused)` : "",
  ];
  console.log(cells.join(""));
}

const startLoad = performance.now();
await loadGuard();
const loadMs = performance.now() - startLoad;

const spider = readFileSync(SPIDER_GOLD, "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line) => line.split("\t")[0] ?? "");
const spiderman = csvColumn(readFileSync(SPIDERMAN_MYSQL, "utf8"), "sql");
const postgres = LEGITIMATE_READS.filter((entry) => entry.dialect === "postgresql").map((entry) => entry.sql);

console.log(`machine: ${os.cpus()[0]?.model ?? "unknown cpu"} (${os.cpus().length} cpus), node ${process.version}, ${os.platform()} ${os.arch()}`);
// Tail latencies on a shared machine say more about the neighbours than about the guard.
console.log(`load average ${os.loadavg().map((load) => load.toFixed(2)).join(" ")}`);
console.log(`loadGuard(): ${loadMs.toFixed(0)} ms; ${ROUNDS} timed rounds after ${WARMUP_ROUNDS} warm-up rounds\n`);
time("sqlite  (Spider dev gold)", "sqlite", spider);
time("mysql   (Spiderman CSV)", "mysql", spiderman);
time("postgresql (test reads)", "postgresql", postgres);
