// Schema context for the agent: word pieces, ranking tables by a question (Chinook), the
// foreign-key neighbour boost, the token budget, and the lookups behind the agent's tools.

import { beforeAll, describe, expect, it } from "vitest";

import {
  buildSchemaIndex,
  describeTables,
  estimateTokens,
  findTables,
  nameParts,
  rankTables,
  schemaContext,
  type SchemaIndex,
} from "../../agents/schema-context.js";
import { stem, wordPieces } from "../../agents/schema-index.js";
import { renderSchema } from "../../src/connectors/schema-text.js";
import type { SchemaSnapshot, TableSchema } from "../../src/connectors/types.js";
import { CHINOOK_SQLITE, introspectSqliteFile } from "../support/schema-fixtures.js";
import { padSchema } from "../support/schema-padding.js";

const chinook = introspectSqliteFile(CHINOOK_SQLITE);
const chinookIndex = await buildSchemaIndex(chinook);

function table(name: string, columns: string[], refs: Record<string, string> = {}, schema: string | null = null): TableSchema {
  return {
    schema,
    name,
    kind: "table",
    comment: null,
    estimated_rows: null,
    columns: columns.map((c) => ({ name: c, type: c === "id" || c.endsWith("_id") ? "integer" : "text", nullable: c !== "id", comment: null })),
    primary_key: ["id"],
    foreign_keys: Object.entries(refs).map(([column, target]) => ({ columns: [column], references: { schema, table: target, columns: ["id"] } })),
  };
}
const snapshotOf = (tables: TableSchema[], dialect: SchemaSnapshot["dialect"] = "sqlite"): SchemaSnapshot => ({
  dialect,
  tables,
  introspected_at: "2024-01-01T00:00:00.000Z",
});
const names = (ranked: { table: TableSchema }[]) => ranked.map((r) => r.table.name);

describe("a schema of many tables of one name (30,000 schemas with an orders table each)", () => {
  const many: SchemaSnapshot = {
    dialect: "postgresql",
    introspected_at: "2026-12-04T00:00:00Z",
    tables: Array.from({ length: 60_000 }, (_, i) => ({
      schema: `s${i}`,
      name: "orders",
      kind: "table" as const,
      comment: null,
      estimated_rows: null,
      columns: [{ name: "id", type: "integer", nullable: false, comment: null }],
      primary_key: ["id"],
      foreign_keys: [],
    })),
  };

  it("is indexed (a copy of the name's list per table made this take 20 s; the suite's duration shows a return of it)", async () => {
    expect((await buildSchemaIndex(many)).byName.get("orders")).toHaveLength(60_000);
  });

  it("describes at most 20 tables of a bare name, and says how to name the others", async () => {
    const index = await buildSchemaIndex(many);
    const described = describeTables(index, ["orders"]);
    expect(described.tables).toHaveLength(20);
    expect(described.text).toContain("59980 more tables are named orders: name one with its schema (schema.orders)");
    expect(describeTables(index, ["s59999.orders"]).tables).toEqual(["s59999.orders"]);
  });
});

describe("wordPieces", () => {
  it.each([
    ["InvoiceLine", ["invoice", "line"]],
    ["singer_in_concert", ["singer", "in", "concert"]],
    ["StuID", ["stu", "id"]],
    ["HTTPServerLogs", ["http", "server", "log"]],
    ["Singers", ["singer"]],
    ["country_ids", ["country", "id"]],
    ["city_code2", ["city", "code", "2"]],
    ["LName", ["name"]],
    ["ref_Template_Types", ["ref", "template", "type"]],
    ["Straße_Nummer", ["straße", "nummer"]],
    ["  --  ", []],
    ["XMLHttpRequest", ["xml", "http", "request"]],
    ["ABCDef", ["abc", "def"]],
  ])("splits %j into %j", (text, expected) => {
    expect(wordPieces(text)).toEqual(expected);
  });

  it("splits a long run of capitals in time linear in its length", () => {
    expect(wordPieces(`${"A".repeat(200_000)}b`)).toHaveLength(2);
  });

  it.each([
    ["How many singers do we have?", ["singer"]],
    ["Show the names of countries with more than 3 cities", ["name", "country", "3", "city"]],
    ["What is the total of each invoice?", ["invoice"]],
  ])("drops question stop words from %j", (question, expected) => {
    expect(wordPieces(question, { dropStopWords: true })).toEqual(expected);
  });
});

describe("stem", () => {
  it.each([
    ["singers", "singer"],
    ["countries", "country"],
    ["ids", "id"],
    ["classes", "class"],
    ["matches", "match"],
    ["boxes", "box"],
    ["status", "status"],
    ["address", "address"],
    ["analysis", "analysis"],
    ["singer", "singer"],
    ["us", "us"],
    ["2010s", "2010s"],
  ])("stems %s to %s", (word, expected) => {
    expect(stem(word)).toBe(expected);
  });
});

describe("rankTables on Chinook", () => {
  it.each([
    ["List all genres", "Genre"],
    ["How many customers live in Brazil?", "Customer"],
    ["Which employees were hired after 2003?", "Employee"],
    ["What is the total of each invoice?", "Invoice"],
    ["Show invoice lines with a quantity above one", "InvoiceLine"],
    ["Which media types exist?", "MediaType"],
    ["List the playlists by name", "Playlist"],
    ["Which tracks are on each playlist?", "PlaylistTrack"],
    ["What is the longest track in milliseconds?", "Track"],
    ["Which albums has each artist released?", "Album"],
    ["Which composer wrote the most songs?", "Track"],
    ["Who is the support rep of each customer?", "Customer"],
    ["How many invoices were billed to a city in Canada?", "Invoice"],
    ["Name every artist", "Artist"],
  ])("ranks first for %j: %s", (question, expected) => {
    expect(names(rankTables(chinookIndex, question, 1))).toEqual([expected]);
  });

  it("returns every table, best first, with no limit", () => {
    const ranked = rankTables(chinookIndex, "invoice totals by country");
    expect(ranked).toHaveLength(chinook.tables.length);
    expect(ranked.map((r) => r.score)).toEqual([...ranked.map((r) => r.score)].sort((a, b) => b - a));
  });

  it("is deterministic and breaks ties by relations, then name", async () => {
    const a = rankTables(chinookIndex, "nothing in common here");
    expect(rankTables(chinookIndex, "nothing in common here")).toEqual(a);
    expect(a.every((r) => r.score === 0)).toBe(true);
    // Track has the most relations (Album, Genre, MediaType, InvoiceLine, PlaylistTrack).
    expect(a[0]!.table.name).toBe("Track");
    const twins = snapshotOf([table("zeta", ["id", "x"]), table("alpha", ["id", "x"])]);
    expect(names(rankTables(await buildSchemaIndex(twins), "x"))).toEqual(["alpha", "zeta"]);
  });
});

describe("foreign-key neighbour boost", () => {
  const shop = snapshotOf([
    table("orders", ["id", "customer_id", "total", "placed_at"], { customer_id: "customers" }),
    table("customers", ["id", "full_name", "email"]),
    table("order_archive", ["id", "total", "archived_year"]),
    table("products", ["id", "title", "year"]),
    table("warehouses", ["id", "city"]),
  ]);
  let index: SchemaIndex;
  beforeAll(async () => {
    index = await buildSchemaIndex(shop);
  });

  it("ranks the neighbour of the top hit above a table matching only a minor word", () => {
    const ranked = names(rankTables(index, "largest orders of the year"));
    expect(ranked[0]).toBe("orders");
    expect(ranked.indexOf("customers")).toBeLessThan(ranked.indexOf("products"));
  });

  it("gives a neighbour a score although it shares no word with the question", () => {
    const customers = rankTables(index, "total of orders").find((r) => r.table.name === "customers");
    expect(customers!.score).toBeGreaterThan(0);
  });

  it("ranks a junction table between two hits with them, whatever its columns are called", async () => {
    const music = await buildSchemaIndex(
      snapshotOf([
        table("singers", ["id", "name", "country"]),
        table("concerts", ["id", "title", "year"]),
        table("bookings", ["id", "artist_ref", "event_ref", "fee"], { artist_ref: "singers", event_ref: "concerts" }),
        table("venues", ["id", "name", "city"]),
        table("tour_archive", ["id", "name", "year", "country"]),
      ]),
    );
    const ranked = names(rankTables(music, "Names of singers who performed in concerts of year 2014"));
    expect(ranked.slice(0, 3).sort()).toEqual(["bookings", "concerts", "singers"]);
  });

  it("brings in the table between a named one and the facts (Genre -> Track)", () => {
    expect(names(rankTables(chinookIndex, "Which genre has the most sales?", 3))).toEqual(expect.arrayContaining(["Genre", "Track"]));
  });
});

describe("schemaContext", () => {
  it("returns the whole schema, in snapshot order, whatever the question, when it fits", () => {
    const whole = renderSchema(chinook, undefined, { typeSizes: false });
    for (const question of ["How many customers?", "longest track", ""]) {
      const ctx = schemaContext(chinookIndex, question, { maxTokens: 4000 });
      expect(ctx.text).toBe(whole);
      expect(ctx.tables).toEqual(chinook.tables.map((t) => t.name));
      expect(ctx.omitted).toBe(0);
      expect(ctx.tokens).toBe(estimateTokens(whole));
    }
  });

  it("shows the most relevant tables and names all the others when the schema does not fit", () => {
    const ctx = schemaContext(chinookIndex, "Which tracks are on each playlist?", { maxTokens: 300 });
    expect(ctx.tables.slice(0, 3)).toEqual(["PlaylistTrack", "Playlist", "Track"]);
    expect(ctx.omitted).toBe(chinook.tables.length - ctx.tables.length);
    expect(ctx.omitted).toBeGreaterThan(0);
    const others = chinook.tables.map((t) => t.name).filter((n) => !ctx.tables.includes(n));
    const last = ctx.text.split("\n").at(-1)!;
    expect(last.startsWith("Other tables (use find_tables/describe_tables): ")).toBe(true);
    expect(last.split(": ")[1]!.split(", ").sort()).toEqual(others.sort());
  });

  it("tells a reader without the agent's tools how it reaches the others (MCP's describe_schema)", () => {
    const ctx = schemaContext(chinookIndex, "Which tracks are on each playlist?", { maxTokens: 300, lookup: "describe_schema with tables: [...] gives them in full" });
    expect(ctx.text.split("\n").at(-1)!.startsWith("Other tables (describe_schema with tables: [...] gives them in full): ")).toBe(true);
    expect(ctx.text).not.toContain("find_tables");
  });

  it("cuts the names line, best ranked first, when the names do not all fit", () => {
    const ctx = schemaContext(chinookIndex, "Which tracks are on each playlist?", { maxTokens: 200 });
    const ranked = names(rankTables(chinookIndex, "Which tracks are on each playlist?")).filter((n) => !ctx.tables.includes(n));
    const match = /^Other tables \(use find_tables\/describe_tables\): (.*) \.\.\. \(\+(\d+) more\)$/.exec(ctx.text.split("\n").at(-1)!);
    expect(match).not.toBeNull();
    const listed = match![1]!.split(", ");
    expect(listed).toEqual(ranked.slice(0, listed.length));
    expect(Number(match![2])).toBe(ranked.length - listed.length);
  });

  let padded: SchemaIndex;
  beforeAll(async () => {
    padded = await buildSchemaIndex(padSchema(chinook, 1000, 7));
  });
  it.each([300, 1000, 2000, 4000, 8000])("stays within a budget of %i tokens on 1,000 tables", (maxTokens) => {
    const ctx = schemaContext(padded, "Which customers bought the most rock tracks?", { maxTokens });
    expect(ctx.tokens).toBeLessThanOrEqual(maxTokens);
    expect(ctx.tokens).toBe(estimateTokens(ctx.text));
    expect(ctx.tables.length + ctx.omitted).toBe(1000);
    expect(ctx.text.split("\n").filter((l) => !l.startsWith("Other tables"))).toHaveLength(ctx.tables.length);
    expect(ctx.text).toMatch(/\nOther tables \(use find_tables\/describe_tables\): .*\(\+\d+ more\)$/);
  });

  it("keeps the question's tables on 1,000 tables", () => {
    const ctx = schemaContext(padded, "Which customers bought the most rock tracks?", { maxTokens: 4000 });
    expect(ctx.tables).toEqual(expect.arrayContaining(["Customer", "Track"]));
  });

  it("shows nothing rather than break a budget too small for any line", () => {
    const ctx = schemaContext(chinookIndex, "tracks", { maxTokens: 8 });
    expect(ctx).toEqual({ text: "", tables: [], omitted: chinook.tables.length, tokens: 0 });
  });
});

describe("findTables", () => {
  it("finds tables by any word of their name, columns or neighbours", () => {
    expect(findTables(chinookIndex, "invoice", 2).map((t) => t.name).sort()).toEqual(["Invoice", "InvoiceLine"]);
    expect(findTables(chinookIndex, "billing country")[0]).toMatchObject({ name: "Invoice", columns: expect.arrayContaining(["BillingCountry"]) });
  });

  it("returns nothing when nothing matches", () => {
    expect(findTables(chinookIndex, "zebra quux")).toEqual([]);
  });
});

describe("describeTables", () => {
  it("renders the named tables, case-insensitively and quoted or not", () => {
    const found = describeTables(chinookIndex, ["invoiceline", '"Album"', "[Genre]"]);
    expect(found.tables).toEqual(["InvoiceLine", "Album", "Genre"]);
    expect(found.unknown).toEqual([]);
    expect(found.text.split("\n")[0]).toMatch(/^InvoiceLine\(InvoiceLineId integer PK, InvoiceId integer NOT NULL -> Invoice\.InvoiceId/);
  });

  it("lists unknown names with similar tables", () => {
    const found = describeTables(chinookIndex, ["Tracks", "nope"]);
    expect(found.tables).toEqual([]);
    expect(found.unknown).toEqual(["Tracks", "nope"]);
    expect(found.text).toContain("Unknown table: Tracks (similar: Track");
    expect(found.text).toContain("Unknown table: nope");
  });

  let schemas: SchemaIndex;
  beforeAll(async () => {
    schemas = await buildSchemaIndex(
      snapshotOf(
        [
          table("orders", ["id", "total"], {}, "public"),
          table("orders", ["id", "total", "region"], {}, "sales"),
          table("My.Table", ["id"], {}, "Odd Schema"),
        ],
        "postgresql",
      ),
    );
  });
  it.each([
    [["sales.orders"], ["sales.orders"]],
    [["SALES.Orders"], ["sales.orders"]],
    [["public.orders"], ["orders"]],
    [["orders"], ["orders", "sales.orders"]],
    [['"Odd Schema"."My.Table"'], ['"Odd Schema"."My.Table"']],
    [["sales.orders", "sales.orders"], ["sales.orders"]],
  ])("resolves %j to %j", (requested, expected) => {
    expect(describeTables(schemas, requested).tables).toEqual(expected);
  });

  it.each([
    ["a.b", ["a", "b"]],
    ['"a.b"', ["a.b"]],
    ['"x""y".z', ['x"y', "z"]],
    ["`db`.`t`", ["db", "t"]],
    ["[dbo].[t]", ["dbo", "t"]],
    [" spaced . name ", ["spaced", "name"]],
    ["a b.c", ["a b", "c"]],
  ])("splits %j into %j", (raw, expected) => {
    expect(nameParts(raw)).toEqual(expected);
  });

  it("splits a name of a model's choosing in time linear in its length", () => {
    // Spaces then "[": split every way before failing, 20 s at 4,000 characters.
    expect(nameParts(`${" ".repeat(100_000)}[`)).toEqual([]);
    expect(nameParts(`a${" ".repeat(100_000)}[`)).toEqual([]);
  });
});
