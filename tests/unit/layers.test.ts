// The layering of DESIGN.md's "Verbs in one layer", read from every import of src/ and agents/
// with the TypeScript compiler's own import scanner: the verbs (src/services/) are called only
// by the edges (HTTP, MCP, CLI); the monitoring engine, connectors and store sit below them and
// never call up; the store's column shapes are a leaf. A failure names each offending import.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface Import {
  /** Importing file, relative to the repository (src/monitoring/run-table.ts). */
  from: string;
  /** Imported file, relative to the repository, as a .ts path (src/services/queries.ts). */
  to: string;
  /** The specifier as written. */
  written: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(rel);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [rel] : [];
  });
}

/** Every relative import (static, type-only, re-export or dynamic) of Pulse's own code. */
function ownImports(): Import[] {
  return [...sourceFiles("src"), ...sourceFiles("agents")].flatMap((from) => {
    const scanned = ts.preProcessFile(readFileSync(path.join(ROOT, from), "utf8"), true, true);
    return scanned.importedFiles
      .filter((i) => i.fileName.startsWith("."))
      .map((i) => ({ from, written: i.fileName, to: path.posix.join(path.posix.dirname(from), i.fileName).replace(/\.js$/, ".ts") }));
  });
}

const IMPORTS = ownImports();
const under = (file: string, ...dirs: string[]) => dirs.some((dir) => file.startsWith(`${dir}/`));
const shown = (list: Import[]) => list.map((i) => `${i.from} imports ${i.written} (${i.to})`);

describe("layers", () => {
  it("reads the imports it judges", () => {
    // A scanner that saw nothing would pass every rule below.
    expect(IMPORTS.length).toBeGreaterThan(300);
    expect(IMPORTS).toContainEqual(expect.objectContaining({ from: "src/http/routes/monitoring-tables.ts", to: "src/services/monitored-tables.ts" }));
    expect(IMPORTS).toContainEqual(expect.objectContaining({ from: "src/monitoring/run-table.ts", to: "src/connectors/saved-connection.ts" }));
  });

  it("lets only the edges (http/, mcp/, cli/) and other verbs call the verbs in services/", () => {
    const offending = IMPORTS.filter((i) => under(i.to, "src/services") && !under(i.from, "src/services", "src/http", "src/mcp", "src/cli"));
    expect(shown(offending)).toEqual([]);
  });

  it("keeps the monitoring engine, connectors, store and agent below the verbs and the HTTP edge", () => {
    const offending = IMPORTS.filter(
      (i) => under(i.from, "src/monitoring", "src/connectors", "src/store", "agents") && under(i.to, "src/services", "src/http", "src/mcp", "src/cli"),
    );
    expect(shown(offending)).toEqual([]);
  });

  it("keeps the store free of monitoring/ and services/", () => {
    const offending = IMPORTS.filter((i) => under(i.from, "src/store") && under(i.to, "src/monitoring", "src/services"));
    expect(shown(offending)).toEqual([]);
  });

  it("keeps the stored column shapes a leaf that imports nothing of Pulse's", () => {
    expect(shown(IMPORTS.filter((i) => i.from === "src/store/column-types.ts"))).toEqual([]);
  });

  it("keeps the HTTP error handling free of routes", () => {
    expect(shown(IMPORTS.filter((i) => i.from === "src/http/errors.ts" && under(i.to, "src/http/routes")))).toEqual([]);
  });
});
