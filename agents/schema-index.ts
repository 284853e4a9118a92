// Lexical index over a schema's tables (BM25F over table name, column names, comments and
// foreign-key neighbours), built once per schema (~40 ms for 1,000 tables, in slices) so that ranking
// a question costs about a millisecond.
// No embedding service: word pieces, light stemming and abbreviation/compound matching.

import { namingOf, renderTable, tableName, type Naming } from "../src/connectors/schema-text.js";
import type { SchemaSnapshot, TableSchema } from "../src/connectors/types.js";
import { forEachInSlices } from "../src/in-slices.js";

/** Words that say what to compute or how to ask ("how many", "list", "total", "number of"),
 * not where the data is: dropped from questions so that they never pull in a table for its
 * `number` or `total` column. */
const STOP_WORDS = new Set(
  (
    "a about above after all also an and any are as at be been before below between both but by can could " +
    "count did do does each either ever every few find for from get give given had has have having he her " +
    "here hers him his how i if in into is it its least list many me more most much my no nor not number " +
    "of on once one only or other our out over own per please same she should show so some such tell than " +
    "that the their them then there these they this those through to too total under until up us very was " +
    "we were what when where whether which while who whom whose why will with within without would you your"
  ).split(" "),
);

/** Reduces an English plural to its singular, consistently for schema and question words
 * ("singers" ~ "singer", "countries" ~ "country", "ids" ~ "id", "classes" ~ "class"). */
export function stem(word: string): string {
  if (word.length < 3 || /\d/.test(word)) return word;
  if (word.endsWith("ies") && word.length > 4) return `${word.slice(0, -3)}y`;
  if (word.endsWith("sses")) return word.slice(0, -2);
  if (/(?:x|ch|sh|zz)es$/.test(word)) return word.slice(0, -2);
  if (word.endsWith("s") && !/(?:ss|us|is)$/.test(word)) return word.slice(0, -1);
  return word;
}

/** Lower-case word pieces of an identifier or a sentence: snake_case, camelCase, digits and
 * punctuation all split ("InvoiceLine" -> invoice, line; "StuID" -> stu, id), then stemmed. */
export function wordPieces(text: string, opts: { dropStopWords?: boolean } = {}): string[] {
  const spaced = text
    .replace(/(\p{Ll})(\p{Lu})/gu, "$1 $2")
    // An upper-case run before a capitalised word ("HTTPServer"): split before its last
    // capital, found by looking ahead (a run matched whole, then given back letter by letter,
    // was quadratic: 40,000 capitals took 2 s).
    .replace(/(\p{Lu})(?=\p{Lu}\p{Ll})/gu, "$1 ")
    .replace(/(\p{L})(\p{N})/gu, "$1 $2")
    .replace(/(\p{N})(\p{L})/gu, "$1 $2")
    .toLowerCase();
  const pieces: string[] = [];
  for (const word of spaced.split(/[^\p{L}\p{N}]+/u)) {
    if (word.length < 2 && !/\d/.test(word)) continue;
    if (opts.dropStopWords && STOP_WORDS.has(word)) continue;
    pieces.push(stem(word));
  }
  return pieces;
}

/** Cheap, deterministic and a little high for schema text, so a budget holds in real
 * tokens: compact schema lines run 3.4-4.9 characters per o200k/cl100k token (measured on
 * Chinook and padded Spider schemas in bench/schema-context.ts); non-ASCII characters
 * count one token each. */
export function estimateTokens(text: string): number {
  return tokenEstimate(text.length, nonAsciiIn(text));
}

function nonAsciiIn(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) count++;
  return count;
}

const tokenEstimate = (chars: number, nonAscii: number) => Math.ceil((chars - nonAscii) / 3.5 + nonAscii);

export interface IndexedTable {
  table: TableSchema;
  /** As the model sees it: schema-qualified unless in the default schema. */
  name: string;
  /** The compact one-line rendering (`renderTable` without type sizes). */
  line: string;
  /** `estimateTokens(line)`. */
  tokens: number;
  /** Positions (in `SchemaIndex.tables`) of tables this one references or is referenced by. */
  neighbours: number[];
  /** Distinct word pieces of the table's own name. */
  namePieces: string[];
}

export interface SchemaIndex {
  snapshot: SchemaSnapshot;
  /** How the snapshot's names are shown (and so written by the model). */
  naming: Naming;
  /** In snapshot order. */
  tables: IndexedTable[];
  /** `estimateTokens` of the lines joined by newlines: the text shown when the schema fits whole. */
  wholeTokens: number;
  /** term -> [table position, BM25F contribution of the term to that table] */
  postings: Map<string, [number, number][]>;
  /** Distinct terms without digits, for abbreviation and compound matching at query time. */
  vocabulary: string[];
  /** Lower-cased "schema.name" and bare "name" -> table positions. */
  byName: Map<string, number[]>;
}

// BM25F: per-field weight and length normalisation, one saturation over the sum.
const K1 = 1.2;
const FIELDS = [
  { key: "name", weight: 3, b: 0.5 },
  { key: "columns", weight: 1, b: 0.75 },
  { key: "comments", weight: 0.5, b: 0.75 },
  { key: "neighbours", weight: 0.5, b: 0.5 },
] as const;
type Field = (typeof FIELDS)[number]["key"];

const lower = (s: string) => s.toLowerCase();

function neighboursOf(snapshot: SchemaSnapshot, byName: Map<string, number[]>): number[][] {
  const sets = snapshot.tables.map(() => new Set<number>());
  snapshot.tables.forEach((table, i) => {
    for (const fk of table.foreign_keys) {
      const schema = fk.references.schema ?? table.schema;
      const key = schema === null ? lower(fk.references.table) : `${lower(schema)}.${lower(fk.references.table)}`;
      for (const j of byName.get(key) ?? byName.get(lower(fk.references.table)) ?? []) {
        if (j === i) continue;
        sets[i]!.add(j);
        sets[j]!.add(i);
      }
    }
  });
  return sets.map((s) => [...s].sort((a, b) => a - b));
}

/** Builds the index in slices (src/in-slices.ts): a schema may be tens of MB, and indexing it
 * at once held the event loop for seconds. */
export async function buildSchemaIndex(snapshot: SchemaSnapshot): Promise<SchemaIndex> {
  const naming = namingOf(snapshot);
  const byName = new Map<string, number[]>();
  // Appended in place: a copy per table made a schema of many same-named tables (30,000
  // schemas with an `orders` each) cost seconds of the event loop.
  const addName = (key: string, i: number) => {
    const named = byName.get(key);
    if (named) named.push(i);
    else byName.set(key, [i]);
  };
  await forEachInSlices(snapshot.tables, (t, i) => {
    addName(lower(t.name), i);
    if (t.schema !== null) addName(`${lower(t.schema)}.${lower(t.name)}`, i);
  });
  const neighbours = neighboursOf(snapshot, byName);
  // Names repeat (`id`, `created_at`, and each table's name among its neighbours'): each is
  // split once.
  const namePieces = new Map<string, string[]>();
  const piecesOfName = (name: string) => {
    let pieces = namePieces.get(name);
    if (!pieces) namePieces.set(name, (pieces = wordPieces(name)));
    return pieces;
  };
  const tables: IndexedTable[] = [];
  // Term frequencies per field, for BM25F's pseudo-frequency per (term, table) below.
  const fieldTerms: Record<Field, string[]>[] = [];
  let chars = 0;
  let nonAscii = 0;
  await forEachInSlices(snapshot.tables, (table, i) => {
    const line = renderTable(table, naming, { typeSizes: false });
    const lineNonAscii = nonAsciiIn(line);
    chars += line.length + 1;
    nonAscii += lineNonAscii;
    tables.push({
      table,
      name: tableName(table, naming),
      line,
      tokens: tokenEstimate(line.length, lineNonAscii),
      neighbours: neighbours[i]!,
      namePieces: [...new Set(piecesOfName(table.name))],
    });
    fieldTerms.push({
      name: piecesOfName(table.name),
      columns: table.columns.flatMap((c) => piecesOfName(c.name)),
      comments: [table.comment, ...table.columns.map((c) => c.comment)].flatMap((c) => (c ? wordPieces(c, { dropStopWords: true }) : [])),
      neighbours: neighbours[i]!.flatMap((j) => piecesOfName(snapshot.tables[j]!.name)),
    });
  });

  const n = Math.max(1, tables.length);
  const avgLength = Object.fromEntries(
    FIELDS.map((f) => [f.key, Math.max(1, fieldTerms.reduce((sum, d) => sum + d[f.key].length, 0) / n)]),
  ) as Record<Field, number>;
  const pseudoTf = new Map<string, Map<number, number>>();
  await forEachInSlices(fieldTerms, (doc, i) => {
    for (const field of FIELDS) {
      const terms = doc[field.key];
      const norm = 1 - field.b + (field.b * terms.length) / avgLength[field.key];
      for (const term of terms) {
        let perTable = pseudoTf.get(term);
        if (!perTable) pseudoTf.set(term, (perTable = new Map()));
        perTable.set(i, (perTable.get(i) ?? 0) + field.weight / norm);
      }
    }
  });
  const postings = new Map<string, [number, number][]>();
  const vocabulary: string[] = [];
  await forEachInSlices(pseudoTf, ([term, perTable]) => {
    const idf = Math.log(1 + (n - perTable.size + 0.5) / (perTable.size + 0.5));
    postings.set(
      term,
      [...perTable].map(([i, tf]): [number, number] => [i, (idf * tf * (K1 + 1)) / (K1 + tf)]),
    );
    if (!/\d/.test(term)) vocabulary.push(term);
  });
  // The whole text's estimate, from its lines': the text itself is joined only when it fits a
  // budget (schemaContext), never for a schema of tens of MB.
  const wholeTokens = tokenEstimate(Math.max(0, chars - 1), nonAscii);
  return { snapshot, naming, tables, wholeTokens, postings, vocabulary, byName };
}

/** Weight of a partial match (abbreviation, derived word, compound) against an exact one. */
const PARTIAL = 0.5;
/** Added, times the share of its name's pieces the question contains, to a matched table. */
const COVERAGE_BONUS = 4;

/** How strongly a schema term stands for a question word: 1 for the same piece, less for
 * an abbreviation ("stu" for "student", "emp" for "employee"), a derived word ("nationality"
 * for "nation") or a compound of known words ("countrylanguage" for "language", but not
 * "vaccination" for "nation"). */
function expansions(index: SchemaIndex, piece: string): [string, number][] {
  const found: [string, number][] = index.postings.has(piece) ? [[piece, 1]] : [];
  if (piece.length < 3) return found;
  for (const term of index.vocabulary) {
    if (term === piece) continue;
    if (term.length >= 3 && piece.startsWith(term)) found.push([term, PARTIAL]);
    else if (piece.length >= 4 && term.length > piece.length && isCompoundOf(index, term, piece)) found.push([term, PARTIAL]);
  }
  return found;
}

function isCompoundOf(index: SchemaIndex, term: string, piece: string): boolean {
  const at = term.indexOf(piece);
  if (at < 0) return false;
  if (at === 0) return true;
  const before = term.slice(0, at);
  const after = term.slice(at + piece.length);
  const known = (part: string) => part === "" || (part.length >= 2 && index.postings.has(stem(part)));
  return known(before) && known(after);
}

/** Lexical BM25F score of every table (by position) for a question or keyword query. */
export function lexicalScores(index: SchemaIndex, query: string): Float64Array {
  const scores = new Float64Array(index.tables.length);
  const matched = new Map<string, number>();
  for (const piece of new Set(wordPieces(query, { dropStopWords: true }))) {
    // A table matched by several expansions of one word counts its best match only.
    const best = new Map<number, number>();
    for (const [term, weight] of expansions(index, piece)) {
      matched.set(term, Math.max(matched.get(term) ?? 0, weight));
      for (const [i, contribution] of index.postings.get(term) ?? []) {
        best.set(i, Math.max(best.get(i) ?? 0, weight * contribution));
      }
    }
    for (const [i, s] of best) scores[i]! += s;
  }
  // A question that spells out a table's whole name ("singers in concerts") names that
  // table rather than one of its longer cousins (singer_royalty_archive).
  if (matched.size > 0) {
    index.tables.forEach((t, i) => {
      if (scores[i] === 0 || t.namePieces.length === 0) return;
      const covered = t.namePieces.reduce((sum, p) => sum + (matched.get(p) ?? 0), 0) / t.namePieces.length;
      scores[i]! += COVERAGE_BONUS * covered;
    });
  }
  return scores;
}
