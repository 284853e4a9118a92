// Work over a whole schema in slices (src/in-slices.ts): every step runs, in order, and other
// work gets the event loop between slices; the schema's JSON written that way is the same JSON.

import { describe, expect, it } from "vitest";

import { schemaJsonInSlices } from "../../src/connectors/schema-json.js";
import type { SchemaSnapshot } from "../../src/connectors/types.js";
import { forEachInSlices, SLICE_MS } from "../../src/in-slices.js";

const busyFor = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe("forEachInSlices", () => {
  it("runs every step in order and lets other work run between slices", async () => {
    const seen: [string, number][] = [];
    let otherWorkRan = 0;
    const other = setInterval(() => otherWorkRan++, 0);
    try {
      // Each step takes half a slice: a turn for the interval at least every other step.
      await forEachInSlices(["a", "b", "c", "d", "e", "f", "g", "h"], (item, i) => {
        busyFor(SLICE_MS / 2);
        seen.push([item, i]);
      });
    } finally {
      clearInterval(other);
    }
    expect(seen).toEqual(["a", "b", "c", "d", "e", "f", "g", "h"].map((item, i) => [item, i]));
    expect(otherWorkRan).toBeGreaterThanOrEqual(2);
  });
});

describe("schemaJsonInSlices", () => {
  const snapshot = (tables: SchemaSnapshot["tables"]): SchemaSnapshot => ({ dialect: "postgresql", tables, introspected_at: "2026-12-05T02:00:00.000Z" });
  const table = (name: string): SchemaSnapshot["tables"][number] => ({
    schema: "public",
    name,
    kind: "table",
    comment: `"${name}" \u2014 \u00e9t\u00e9 \ud83d\ude00`,
    estimated_rows: 12,
    columns: [{ name: "id", type: "integer", nullable: false, comment: null }],
    primary_key: ["id"],
    foreign_keys: [],
  });

  it.each([
    ["no tables", []],
    ["one table", [table("orders")]],
    ["many tables, some not ASCII", Array.from({ length: 2_000 }, (_, i) => table(`t\u00e9_${i}`))],
  ])("writes the same JSON, in UTF-8, as JSON.stringify (%s)", async (_, tables) => {
    const whole = snapshot(tables);
    const written = Buffer.from(await schemaJsonInSlices(whole)).toString("utf8");
    expect(JSON.parse(written)).toEqual(whole);
    expect(written.length).toBe(JSON.stringify(whole).length);
  });
});
