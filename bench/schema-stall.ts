// How long the event loop stands still while Pulse works over a large schema: the /ask index
// (buildSchemaIndex), the schema's JSON (schemaJsonInSlices) and its size (schemaBytes), each in
// slices (src/in-slices.ts), against JSON.stringify of the same snapshot at once (the baseline,
// in the same run). With BENCH_BASELINE_CHECKOUT (another built checkout, e.g. a worktree of an
// earlier commit) its buildSchemaIndex is measured too, in alternating rounds.
// Run: npm run build && npx tsx bench/schema-stall.ts   (TABLES, COLUMNS, ROUNDS)

import path from "node:path";
import { pathToFileURL } from "node:url";

import { buildSchemaIndex } from "../agents/schema-index.js";
import { schemaJsonInSlices } from "../src/connectors/schema-json.js";
import { schemaBytes } from "../src/connectors/schema-memory.js";
import type { SchemaSnapshot } from "../src/connectors/types.js";
import { machine, median } from "./lib.js";

const TABLES = Number(process.env.TABLES ?? 10_000);
const COLUMNS = Number(process.env.COLUMNS ?? 30);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const baseline = process.env.BENCH_BASELINE_CHECKOUT;

/** A warehouse-like schema: names from a small vocabulary (as real ones repeat), a comment on
 * every table and on one column of each, a foreign key to the table before. */
function snapshot(): SchemaSnapshot {
  const words = ["customer", "order", "invoice", "line", "amount", "created", "updated", "status", "region", "product", "store", "payment"];
  const comment = "Holds the data of the customers as the warehouse loads it every night, one row per event. ".repeat(3);
  const nameOf = (i: number) => `${words[i % words.length]}_${words[(i * 7) % words.length]}_${i}`;
  return {
    dialect: "postgresql",
    introspected_at: new Date().toISOString(),
    tables: Array.from({ length: TABLES }, (_, i) => ({
      schema: `dw_${i % 20}`,
      name: nameOf(i),
      kind: "table" as const,
      comment,
      estimated_rows: i * 100,
      columns: Array.from({ length: COLUMNS }, (_, k) => ({
        name: k === 0 ? "id" : `${words[k % words.length]}_${words[(k + i) % words.length]}`,
        type: k % 3 === 0 ? "bigint" : k % 3 === 1 ? "text" : "timestamp with time zone",
        nullable: k !== 0,
        comment: k === 1 ? comment : null,
      })),
      primary_key: ["id"],
      foreign_keys: i === 0 ? [] : [{ columns: [`${words[1]}_${words[(1 + i) % words.length]}`], references: { schema: `dw_${(i - 1) % 20}`, table: nameOf(i - 1), columns: ["id"] } }],
    })),
  };
}

/** The work's time and the longest the event loop went without a turn meanwhile, in ms. */
async function measure(work: () => unknown): Promise<{ ms: number; stallMs: number }> {
  let last = performance.now();
  let stall = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  await work();
  const ms = performance.now() - started;
  clearInterval(timer);
  return { ms, stallMs: Math.max(stall, performance.now() - last) };
}

const schema = snapshot();
const oldIndex = baseline
  ? ((await import(pathToFileURL(path.join(path.resolve(baseline), "dist/agents/schema-index.js")).href)) as { buildSchemaIndex: (s: SchemaSnapshot) => unknown }).buildSchemaIndex
  : undefined;
const cases: [string, () => unknown][] = [
  ["JSON.stringify at once (baseline)", () => JSON.stringify(schema)],
  ["schemaJsonInSlices", () => schemaJsonInSlices(schema)],
  ["schemaBytes", () => schemaBytes(schema)],
  ["buildSchemaIndex", () => buildSchemaIndex(schema)],
  ...(oldIndex ? [[`buildSchemaIndex of ${baseline}`, () => oldIndex(schema)] as [string, () => unknown]] : []),
];
const results = new Map(cases.map(([name]) => [name, { ms: [] as number[], stallMs: [] as number[] }]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, work] of round % 2 === 0 ? cases : [...cases].reverse()) {
    const { ms, stallMs } = await measure(work);
    results.get(name)!.ms.push(ms);
    results.get(name)!.stallMs.push(stallMs);
  }
}

const json = JSON.stringify(schema).length;
console.log(`${machine()}; ${TABLES} tables of ${COLUMNS} columns, ${(json / 1024 / 1024).toFixed(1)} MB as JSON; ${ROUNDS} rounds, medians`);
console.log("");
console.log("| work | time, ms | longest stall of the event loop, ms |");
console.log("|---|---:|---:|");
for (const [name, r] of results) console.log(`| ${name} | ${median(r.ms).toFixed(0)} | ${median(r.stallMs).toFixed(0)} |`);
