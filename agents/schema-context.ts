// The part of a schema the model sees for one question: the whole schema when it fits the
// token budget, otherwise the tables most relevant to the question (lexical rank plus their
// foreign-key neighbours) and the names of the rest, which the agent looks up with tools.

import { buildSchemaIndex, estimateTokens, lexicalScores, wordPieces, type IndexedTable, type SchemaIndex } from "./schema-index.js";
import type { TableSchema } from "../src/connectors/types.js";

export { buildSchemaIndex, estimateTokens, type SchemaIndex };

// A neighbour of a strong hit shares this fraction of the hit's score: "orders by customer
// name" needs both tables, and a junction table between two hits gets both shares.
const NEIGHBOUR_SHARE = 0.5;
const BOOSTING_HITS = 5;

interface Ranked {
  position: number;
  score: number;
}

function rank(index: SchemaIndex, question: string): Ranked[] {
  const lexical = lexicalScores(index, question);
  const hits = [...lexical.keys()]
    .filter((i) => lexical[i]! > 0)
    .sort((a, b) => lexical[b]! - lexical[a]! || a - b)
    .slice(0, BOOSTING_HITS);
  const scores = Float64Array.from(lexical);
  for (const hit of hits) {
    for (const j of index.tables[hit]!.neighbours) scores[j] = scores[j]! + NEIGHBOUR_SHARE * lexical[hit]!;
  }
  // Ties (no word in common, most often): hubs with many relations first, then by name.
  return index.tables
    .map((_, position) => ({ position, score: scores[position]! }))
    .sort(
      (a, b) =>
        b.score - a.score ||
        index.tables[b.position]!.neighbours.length - index.tables[a.position]!.neighbours.length ||
        compareNames(index.tables[a.position]!, index.tables[b.position]!),
    );
}

const compareNames = (a: IndexedTable, b: IndexedTable) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Tables by relevance to the question, best first; every table when no limit is given. */
export function rankTables(index: SchemaIndex, question: string, limit = Infinity): { table: TableSchema; score: number }[] {
  return rank(index, question)
    .slice(0, limit)
    .map((r) => ({ table: index.tables[r.position]!.table, score: r.score }));
}

export interface SchemaContext {
  /** One line per table, then possibly one "Other tables" line. */
  text: string;
  /** Tables rendered in full, as named in the text. */
  tables: string[];
  /** Tables not rendered in full (some may still be named on the "Other tables" line). */
  omitted: number;
  /** `estimateTokens(text)`, never above the budget. */
  tokens: number;
}

// When the schema does not fit, this share of the budget is kept for the names of the
// tables left out: a name costs ~5 tokens, a full table 40-80.
const NAMES_SHARE = 0.1;
/** How the reader of the context reaches the tables left out: the agent's own tools by default. */
export const AGENT_LOOKUP = "use find_tables/describe_tables";

/** `budget.lookup`: what the "Other tables" line tells the reader to do for one of them. */
export function schemaContext(index: SchemaIndex, question: string, budget: { maxTokens: number; lookup?: string | undefined }): SchemaContext {
  if (index.wholeTokens <= budget.maxTokens) {
    // Snapshot order, identical for every question: a stable prompt prefix caches well.
    return { text: index.tables.map((t) => t.line).join("\n"), tables: index.tables.map((t) => t.name), omitted: 0, tokens: index.wholeTokens };
  }
  const ranked = rank(index, question).map((r) => index.tables[r.position]!);
  const tableBudget = Math.floor(budget.maxTokens * (1 - NAMES_SHARE));
  const shown: IndexedTable[] = [];
  const others: IndexedTable[] = [];
  let used = 0;
  for (const table of ranked) {
    // +1 for the newline; a big table that does not fit leaves room for smaller ones after it.
    const cost = table.tokens + 1;
    if (used + cost <= tableBudget) {
      shown.push(table);
      used += cost;
    } else others.push(table);
  }
  const lines = shown.map((t) => t.line);
  const namesLine = othersLine(others, budget.maxTokens - used, budget.lookup ?? AGENT_LOOKUP);
  if (namesLine) lines.push(namesLine);
  const text = lines.join("\n");
  return { text, tables: shown.map((t) => t.name), omitted: others.length, tokens: estimateTokens(text) };
}

/** "Other tables (...): a, b, c" in rank order, cut with "... (+N more)" to fit `room`. */
function othersLine(others: IndexedTable[], room: number, lookup: string): string | null {
  if (others.length === 0) return null;
  const line = (count: number) => {
    const names = `Other tables (${lookup}): ` + others.slice(0, count).map((t) => t.name).join(", ");
    return count === others.length ? names : `${names}${count > 0 ? " " : ""}... (+${others.length - count} more)`;
  };
  // Longer with every name, so the most names that fit is found by bisection.
  let [lo, hi] = [0, others.length];
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (estimateTokens(line(mid)) <= room) lo = mid;
    else hi = mid - 1;
  }
  const text = line(lo);
  return estimateTokens(text) <= room ? text : null;
}

export interface FoundTable {
  name: string;
  score: number;
  columns: string[];
}

/** Tables matching a keyword query (at least one word in common, or a neighbour of one). */
export function findTables(index: SchemaIndex, query: string, limit = 10): FoundTable[] {
  return rank(index, query)
    .filter((r) => r.score > 0)
    .slice(0, limit)
    .map((r) => {
      const t = index.tables[r.position]!;
      return { name: t.name, score: Math.round(r.score * 1000) / 1000, columns: t.table.columns.map((c) => c.name) };
    });
}

/** Splits `schema.table`, `"My Schema"."My.Table"`, `` `db`.`t` `` or `[dbo].[t]` into parts.
 * The leading spaces and a bare name are each taken whole (`(?=(x))\1`, JavaScript's atomic
 * group): both match spaces, and 4,000 of them before a `[` were split every way (20 s). */
export function nameParts(raw: string): string[] {
  const parts: string[] = [];
  const re = /(?=(\s*))\1(?:"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|\[([^\]]*)\]|(?=([^."`[]+))\5)\s*(?:\.|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < raw.length && (m = re.exec(raw)) !== null) {
    parts.push(m[2]?.replaceAll('""', '"') ?? m[3]?.replaceAll("``", "`") ?? m[4] ?? m[5]!.trim());
    if (m[0].length === 0) break;
  }
  return parts;
}

export interface DescribedTables {
  /** The rendered lines of the tables found, then one line per unknown name. */
  text: string;
  tables: string[];
  unknown: string[];
}

/** Tables one bare name describes at most: a name in thousands of schemas would fill the
 * model's context (and be sent again at every later step). */
const MAX_TABLES_PER_NAME = 20;

/** Full lines of the named tables (case-insensitive; schema-qualified or bare; a bare name
 * present in several schemas describes each, up to MAX_TABLES_PER_NAME). Unknown names come
 * back with suggestions. */
export function describeTables(index: SchemaIndex, names: string[]): DescribedTables {
  const found = new Set<number>();
  const unknown: string[] = [];
  const more: string[] = [];
  for (const raw of names) {
    const parts = nameParts(raw).map((p) => p.toLowerCase());
    const key = parts.length === 2 ? `${parts[0]}.${parts[1]}` : (parts[0] ?? "");
    const positions = index.byName.get(key) ?? index.byName.get(raw.trim().toLowerCase());
    if (!positions || key === "") {
      unknown.push(raw);
      continue;
    }
    for (const p of positions.slice(0, MAX_TABLES_PER_NAME)) found.add(p);
    if (positions.length > MAX_TABLES_PER_NAME) {
      more.push(`${positions.length - MAX_TABLES_PER_NAME} more tables are named ${raw}: name one with its schema (schema.${raw})`);
    }
  }
  const shown = [...found].map((p) => index.tables[p]!);
  const lines = [...shown.map((t) => t.line), ...more];
  for (const name of unknown) {
    const similar = findTables(index, wordPieces(name).join(" "), 3).map((t) => t.name);
    lines.push(`Unknown table: ${name}${similar.length ? ` (similar: ${similar.join(", ")})` : ""}`);
  }
  return { text: lines.join("\n"), tables: shown.map((t) => t.name), unknown };
}
