// Schema context recall on the Spider dev questions: every table the gold SQL reads must be
// among the tables shown in full, on the original schemas and on schemas padded with
// realistic distractors to 1,000 tables, within 4,000 tokens.

import { describe, expect, it } from "vitest";

import { buildSchemaIndex, rankTables, schemaContext, type SchemaIndex } from "../../agents/schema-context.js";
import { spiderQuestions, spiderSnapshots, tablesRead } from "../support/schema-fixtures.js";
import { padSchema } from "../support/schema-padding.js";
import type { SchemaSnapshot } from "../../src/connectors/types.js";

const BUDGET = { maxTokens: 4000 };
const PADDING_SEED = 42;
const snapshots = spiderSnapshots();
const questions = spiderQuestions(snapshots);

async function indexesOf(schemas: Map<string, SchemaSnapshot>): Promise<Map<string, SchemaIndex>> {
  const indexes = new Map<string, SchemaIndex>();
  for (const [id, schema] of schemas) indexes.set(id, await buildSchemaIndex(schema));
  return indexes;
}

function recall(indexes: Map<string, SchemaIndex>): { complete: number; worstTokens: number; misses: string[] } {
  let complete = 0;
  let worstTokens = 0;
  const misses: string[] = [];
  for (const q of questions) {
    const ctx = schemaContext(indexes.get(q.db_id)!, q.question, BUDGET);
    worstTokens = Math.max(worstTokens, ctx.tokens);
    if (q.gold.every((t) => ctx.tables.includes(t))) complete++;
    else misses.push(`${q.db_id}: ${q.question} (gold ${q.gold.join(", ")})`);
  }
  return { complete: complete / questions.length, worstTokens, misses };
}

describe("gold tables from gold SQL", () => {
  it.each([
    ["SELECT count(*) FROM singer", ["singer"]],
    ["SELECT T2.name FROM singer_in_concert AS T1 JOIN singer AS T2 ON T1.singer_id = T2.singer_id", ["singer", "singer_in_concert"]],
    ["SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)", ["concert", "stadium"]],
    ["SELECT a FROM t1 EXCEPT SELECT a FROM (SELECT a FROM t2) AS x", ["t1", "t2"]],
    ["SELECT a FROM main.t1 , t2 INTERSECT SELECT b FROM t3", ["t1", "t2", "t3"]],
  ])("reads the tables of %j", (sql, expected) => {
    expect([...tablesRead(sql)].sort()).toEqual(expected);
  });

  it("finds at least one table in every one of the 643 questions", () => {
    expect(questions).toHaveLength(643);
    expect(questions.filter((q) => q.gold.length === 0)).toEqual([]);
  });
});

describe("padSchema", () => {
  const concert = snapshots.get("concert_singer")!;
  const padded = padSchema(concert, 1000, PADDING_SEED);

  it("pads to the exact count, keeps the real tables and adds no duplicate name", () => {
    expect(padded.tables).toHaveLength(1000);
    for (const real of concert.tables) expect(padded.tables).toContain(real);
    expect(new Set(padded.tables.map((t) => t.name.toLowerCase())).size).toBe(1000);
  });

  it("is the same for the same seed and different for another", () => {
    expect(padSchema(concert, 1000, PADDING_SEED)).toEqual(padded);
    expect(padSchema(concert, 1000, PADDING_SEED + 1).tables.map((t) => t.name)).not.toEqual(padded.tables.map((t) => t.name));
  });

  it("makes foreign keys that all resolve, some of them to real tables", () => {
    const byName = new Map(padded.tables.map((t) => [t.name, t]));
    const fks = padded.tables.flatMap((t) => t.foreign_keys.map((fk) => ({ from: t, fk })));
    for (const { fk } of fks) expect(byName.get(fk.references.table)?.columns.map((c) => c.name)).toContain(fk.references.columns[0]);
    const real = new Set(concert.tables.map((t) => t.name));
    expect(fks.filter(({ from, fk }) => !real.has(from.name) && real.has(fk.references.table)).length).toBeGreaterThan(0);
  });

  it("includes distractors named with the questions' words", () => {
    const names = padded.tables.map((t) => t.name);
    for (const word of ["singer", "concert", "stadium"]) expect(names.filter((n) => n.includes(word)).length).toBeGreaterThan(3);
  });
});

describe("schemaContext recall on Spider dev", () => {
  it("shows every gold table on the original schemas (they fit whole)", async () => {
    const indexes = await indexesOf(snapshots);
    const result = recall(indexes);
    expect(result.complete).toBeGreaterThanOrEqual(0.95);
    expect(result.worstTokens).toBeLessThanOrEqual(BUDGET.maxTokens);
  });

  it("ranks the gold tables first on the original schemas for most questions", async () => {
    // Harder than the context (which holds everything here): the ranking itself.
    const indexes = await indexesOf(snapshots);
    let inTop = 0;
    for (const q of questions) {
      const top = rankTables(indexes.get(q.db_id)!, q.question, q.gold.length).map((r) => r.table.name);
      if (q.gold.every((t) => top.includes(t))) inTop++;
    }
    expect(inTop / questions.length).toBeGreaterThanOrEqual(0.85);
  });

  it("shows every gold table for at least 95% of questions on schemas padded to 1,000 tables, within 4,000 tokens", async () => {
    const indexes = await indexesOf(new Map([...snapshots].map(([id, s]) => [id, padSchema(s, 1000, PADDING_SEED)])));
    for (const index of indexes.values()) expect(index.tables).toHaveLength(1000);
    const result = recall(indexes);
    expect(result.worstTokens).toBeLessThanOrEqual(BUDGET.maxTokens);
    expect(result.complete, result.misses.join("\n")).toBeGreaterThanOrEqual(0.95);
  });
});
