import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { classifyStatement, loadGuard } from "../../src/connectors/guard/index.js";

// Real text-to-SQL workloads: the guard must not refuse the reads people actually ask for.
const SPIDER_GOLD = new URL("../../../shared/data/spider_dev/spider_data/dev_gold.sql", import.meta.url);
const SPIDERMAN_MYSQL = new URL("../../../shared/data/spiderman/dataset_mysql/test_queries.csv", import.meta.url);

/** RFC 4180 CSV: quoted fields may hold commas, newlines and doubled quotes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char !== '"') field += char;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (char === '"') quoted = true;
    else if (char === ",") {
      row.push(field);
      field = "";
    } else if (char === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else if (char !== "\r") field += char;
  }
  if (field !== "" || row.length > 0) rows.push([...row, field]);
  return rows;
}

function refusals(dialect: "sqlite" | "mysql", queries: readonly string[]): string[] {
  return queries.flatMap((sql) => {
    const verdict = classifyStatement(dialect, sql);
    return verdict.ok ? [] : [`${sql}\n  -> ${verdict.rule}: ${verdict.reason}`];
  });
}

beforeAll(async () => {
  await loadGuard();
});

describe("the guard on text-to-SQL benchmarks", () => {
  it("accepts every Spider dev gold query as SQLite", () => {
    const queries = readFileSync(SPIDER_GOLD, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => line.split("\t")[0] ?? "");
    expect(queries).toHaveLength(643);
    expect(refusals("sqlite", queries)).toEqual([]);
  });

  it("accepts every Spiderman MySQL test query as MySQL", () => {
    const [header, ...rows] = parseCsv(readFileSync(SPIDERMAN_MYSQL, "utf8"));
    const column = header?.indexOf("sql") ?? -1;
    expect(column).toBeGreaterThanOrEqual(0);
    const queries = rows.map((row) => row[column] ?? "");
    expect(queries.length).toBeGreaterThanOrEqual(600);
    expect(queries.every((sql) => sql.trim() !== "")).toBe(true);
    expect(refusals("mysql", queries)).toEqual([]);
  });
});
