// Threat: a PostgreSQL function whose effect BEGIN READ ONLY ... ROLLBACK does not stop (issue 11,
// item 4). Every function name in the server's pg_catalog, and every function of the contrib
// extensions it ships (all installed into the test's database), must have a reviewed verdict, the guard
// must refuse exactly the refused ones in any spelling, and the five that were seen writing
// through both layers are refused at POST /query with their effect absent afterwards.

import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { classifyStatement, loadGuard } from "../../src/connectors/guard/index.js";
import { createHarness, type Harness } from "../support/harness.js";
import { createPgDatabase, PG } from "../support/services.js";

const VERDICTS = ["refused", "allowed", "allowed:internal", "allowed:immutable", "allowed:stable"] as const;
type Verdict = (typeof VERDICTS)[number];
const isVerdict = (text: string): text is Verdict => (VERDICTS as readonly string[]).includes(text);

/** postgres-catalog-review.txt: `[verdict] why` headers, then one name per line; `#` comments. */
function readReview(): Map<string, Verdict> {
  const text = readFileSync(new URL("../../src/connectors/guard/postgres-catalog-review.txt", import.meta.url), "utf8");
  const review = new Map<string, Verdict>();
  let verdict: Verdict | undefined;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[([a-z:]+)\] /.exec(line)?.[1];
    if (header !== undefined) {
      if (!isVerdict(header)) throw new Error(`unknown verdict [${header}]`);
      verdict = header;
      continue;
    }
    if (verdict === undefined) throw new Error(`"${line}" comes before any [verdict] header`);
    if (review.has(line)) throw new Error(`"${line}" is reviewed twice`);
    review.set(line, verdict);
  }
  return review;
}

const REVIEW = readReview();
const REFUSED = [...REVIEW].filter(([, verdict]) => verdict === "refused").map(([name]) => name);
const ALLOWED = [...REVIEW].filter(([, verdict]) => verdict !== "refused").map(([name]) => name);

/** PostgreSQL's own spelling of a quoted identifier with its first letter Unicode-escaped. */
const unicodeEscaped = (name: string) => `U&"\\${name.charCodeAt(0).toString(16).padStart(4, "0")}${name.slice(1)}"`;

interface Catalog {
  query<T>(sql: string): Promise<T[]>;
  close(): Promise<void>;
}

/** A fresh database on the test server with every extension the server ships installed, or, to
 * review another PostgreSQL version, whatever database PG_CATALOG_REVIEW_URL names (only read). */
async function openCatalog(): Promise<Catalog> {
  const url = process.env.PG_CATALOG_REVIEW_URL;
  if (url !== undefined) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return { query: async <T>(sql: string) => (await client.query(sql)).rows as T[], close: () => client.end() };
  }
  const db = await createPgDatabase("pulse_catalog");
  // A target may have any of them installed (xml2's xpath_table ran SQL text behind the guard).
  // adminpack installs its file functions into pg_catalog (PostgreSQL 16 and older).
  for (const { name } of await db.query<{ name: string }>("SELECT name FROM pg_available_extensions WHERE installed_version IS NULL ORDER BY name")) {
    await db.query(`CREATE EXTENSION IF NOT EXISTS "${name}" CASCADE`);
  }
  return { query: (sql) => db.query(sql), close: () => db.drop() };
}

/** Objects reviewed: pg_catalog's, and those an extension owns (pg_depend's 'e' entries). */
const ofExtension = (alias: string, catalogTable: string) =>
  `${alias}.oid IN (SELECT objid FROM pg_depend WHERE classid = '${catalogTable}'::regclass AND deptype = 'e')`;
const reviewedFunction = (p: string) => `(${p}.pronamespace = 'pg_catalog'::regnamespace OR ${ofExtension(p, "pg_proc")})`;

let catalog: Catalog;

beforeAll(async () => {
  await loadGuard();
  catalog = await openCatalog();
});
afterAll(async () => catalog?.close());

describe("the review of pg_catalog", () => {
  it("has a verdict for every function name in the server's pg_catalog", async () => {
    const rows = await catalog.query<{ name: string }>(`SELECT DISTINCT proname AS name FROM pg_proc p WHERE ${reviewedFunction("p")}`);
    expect(rows.length).toBeGreaterThan(2000);
    const unreviewed = rows.map((row) => row.name).filter((name) => !REVIEW.has(name)).sort();
    // Each name here needs a verdict in src/connectors/guard/postgres-catalog-review.txt.
    expect(unreviewed).toEqual([]);
  });

  it("holds each machine-sorted name to the pg_proc flags it was sorted by, overloads included", async () => {
    const forms = await catalog.query<{ name: string; form: string; callable: boolean; volatility: string; parallel: string }>(`
      SELECT proname AS name, oid::regprocedure::text AS form, provolatile AS volatility, proparallel AS parallel,
             NOT ('internal'::regtype = ANY (proargtypes::regtype[])
                  OR prorettype::regtype::text IN ('trigger', 'event_trigger', 'language_handler', 'fdw_handler',
                                                   'index_am_handler', 'table_am_handler', 'tsm_handler')) AS callable
        FROM pg_proc p WHERE ${reviewedFunction("p")}`);
    const broken = forms.filter(({ name, callable, volatility, parallel }) => {
      const verdict = REVIEW.get(name);
      if (!callable) return false;
      if (verdict === "allowed:internal") return true;
      if (verdict === "allowed:immutable") return volatility !== "i" || parallel !== "s";
      if (verdict === "allowed:stable") return volatility === "v" || parallel !== "s";
      return false;
    });
    // A new form of a name that was sorted by its flags: read it and move the name by hand.
    expect(broken.map((row) => row.form)).toEqual([]);
  });

  it("is refused by the guard in every spelling, and only there", () => {
    expect(REFUSED.length).toBeGreaterThan(150);
    for (const name of REFUSED) {
      for (const sql of [
        `SELECT ${name}()`,
        `SELECT pg_catalog.${name}(1)`,
        `SELECT "pg_catalog"."${name}"('x')`,
        `SELECT ${name.toUpperCase()}()`,
        `SELECT ${unicodeEscaped(name)}()`,
        `SELECT * FROM ${name}() AS f`,
        `SELECT 1 WHERE EXISTS (SELECT public.${name}(NULL))`,
      ]) {
        expect(classifyStatement("postgresql", sql), sql).toMatchObject({ ok: false, rule: "dangerous_function" });
      }
    }
    for (const name of ALLOWED) {
      const sql = `SELECT pg_catalog."${name}"()`;
      expect(classifyStatement("postgresql", sql), sql).toEqual({ ok: true, kind: "select" });
    }
  });

  it("reaches no refused function through an operator, cast, type, aggregate, view or SQL function", async () => {
    const refused = new Set(REFUSED);
    const hidden = await catalog.query<{ via: string; fn: string }>(`
      SELECT 'operator ' || o.oid::regoperator AS via, o.oprcode::regproc::text AS fn FROM pg_operator o WHERE o.oprcode <> 0
      UNION ALL SELECT 'cast ' || format_type(c.castsource, NULL) || ' -> ' || format_type(c.casttarget, NULL), c.castfunc::regproc::text
        FROM pg_cast c WHERE c.castfunc <> 0
      UNION ALL SELECT 'type ' || t.typname, f::regproc::text
        FROM pg_type t, unnest(ARRAY[t.typinput, t.typoutput, t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze]::oid[]) f
       WHERE f <> 0
      UNION ALL SELECT 'aggregate ' || a.aggfnoid::regproc, f::regproc::text
        FROM pg_aggregate a,
             unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn]::oid[]) f
       WHERE f <> 0`);
    expect(hidden.length).toBeGreaterThan(1000);
    expect(hidden.filter((row) => refused.has(row.fn)).map((row) => `${row.via} calls ${row.fn}`)).toEqual([]);

    // Views the user can select from, and SQL functions reviewed as allowed, whose bodies the
    // guard never sees.
    const bodies = await catalog.query<{ what: string; body: string }>(`
      SELECT 'view ' || c.oid::regclass AS what, pg_get_viewdef(c.oid) AS body FROM pg_class c
       WHERE c.relkind IN ('v', 'm') AND (c.relnamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) OR ${ofExtension("c", "pg_class")})
      UNION ALL SELECT 'function ' || p.oid::regprocedure, pg_get_functiondef(p.oid) FROM pg_proc p
       WHERE ${reviewedFunction("p")} AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')`);
    expect(bodies.length).toBeGreaterThan(100);
    const calls = (body: string) => REFUSED.filter((name) => new RegExp(`\\b${name}\\s*\\(`, "i").test(body));
    const leaks = bodies
      .filter(({ what }) => !REFUSED.includes(/^function (?:pg_catalog\.)?(\w+)\(/.exec(what)?.[1] ?? ""))
      .flatMap(({ what, body }) => calls(body).map((name) => `${what} calls ${name}`));
    expect(leaks).toEqual([]);
  });

  it("leaves no refused function callable in attribute notation (row.function), which is no call in the parse tree", async () => {
    const forms = await catalog.query<{ name: string }>(`
      SELECT p.proname AS name FROM pg_proc p JOIN pg_type t ON t.oid = p.proargtypes[0]
       WHERE ${reviewedFunction("p")} AND p.pronargs = 1
         AND (t.typtype = 'c' OR t.oid IN ('record'::regtype, 'anyelement'::regtype, '"any"'::regtype,
                                           'anycompatible'::regtype, 'anynonarray'::regtype, 'anycompatiblenonarray'::regtype))`);
    expect(forms.length).toBeGreaterThan(10);
    expect(forms.map((row) => row.name).filter((name) => REFUSED.includes(name))).toEqual([]);
  });
});

describe("POST /query on a connection that owns a BRIN and a GIN index", () => {
  let h: Harness;
  let target: Awaited<ReturnType<typeof createPgDatabase>>;
  let token: string;
  let connectionId: number;

  beforeAll(async () => {
    h = await createHarness();
    target = await createPgDatabase("pulse_catalog_target");
    // Autovacuum off: it would summarize and flush behind the test's back. One page per BRIN
    // range, and rows inserted after the indexes, so every range but the first (summarized,
    // empty, at build) starts unsummarized and the GIN index's entries wait in its pending list.
    await target.query("CREATE TABLE readings (id int, doc tsvector) WITH (autovacuum_enabled = off)");
    for (const index of ["readings_brin_new", "readings_brin_range", "readings_brin_summarized"]) {
      await target.query(`CREATE INDEX ${index} ON readings USING brin (id) WITH (pages_per_range = 1, autosummarize = off)`);
    }
    await target.query("CREATE INDEX readings_gin ON readings USING gin (doc) WITH (fastupdate = on)");
    await target.query("INSERT INTO readings SELECT g, to_tsvector('simple', 'word' || g) FROM generate_series(1, 5000) g");
    const [summarized] = await target.query<{ n: number }>("SELECT brin_summarize_range('readings_brin_summarized', 5) AS n");
    expect(summarized!.n).toBe(1);

    const user = await h.newUser();
    token = user.token;
    const body = { db_type: "postgresql", host: PG.host, port: PG.port, database_name: target.name, username: PG.user, db_password: "unused" };
    const added = await h.call("POST", "/databases/add_db_connection", { token, json: body });
    expect(added.status).toBe(201);
    connectionId = added.body.db_connection.id as number;
  });
  afterAll(async () => {
    await h?.close();
    await target?.drop();
  });

  async function expectRefused(sql: string) {
    const res = await h.call("POST", "/query", { token, json: { sql, connection_id: connectionId } });
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_refused", rule: "dangerous_function" });
  }

  const single = async (sql: string) => Number(Object.values((await target.query<Record<string, unknown>>(sql))[0]!)[0]);

  it("refuses brin_summarize_new_values, and the index's ranges stay unsummarized", async () => {
    await expectRefused("SELECT brin_summarize_new_values('readings_brin_new')");
    expect(await single("SELECT brin_summarize_new_values('readings_brin_new')")).toBeGreaterThan(0);
  });

  it("refuses brin_summarize_range, and the range stays unsummarized", async () => {
    await expectRefused("SELECT pg_catalog.brin_summarize_range('readings_brin_range', 5)");
    expect(await single("SELECT brin_summarize_range('readings_brin_range', 5)")).toBe(1);
  });

  it("refuses brin_desummarize_range, and the range stays summarized", async () => {
    await expectRefused(`SELECT "brin_desummarize_range"('readings_brin_summarized', 5)`);
    expect(await single("SELECT brin_summarize_range('readings_brin_summarized', 5)")).toBe(0);
  });

  it("refuses gin_clean_pending_list, and the pending list is still there", async () => {
    await expectRefused("SELECT * FROM GIN_CLEAN_PENDING_LIST('readings_gin')");
    expect(await single("SELECT gin_clean_pending_list('readings_gin')")).toBeGreaterThan(0);
  });

  it("refuses pg_nextoid, and the server's OID counter does not jump", async () => {
    const calls = 50_000;
    const before = await single("SELECT pg_nextoid('pg_class', 'oid', 'pg_class_oid_index')");
    await expectRefused(`SELECT count(pg_nextoid('pg_class', 'oid', 'pg_class_oid_index')) FROM generate_series(1, ${calls})`);
    const after = await single("SELECT pg_nextoid('pg_class', 'oid', 'pg_class_oid_index')");
    // Other sessions on this server take OIDs too, but nowhere near this many meanwhile.
    expect(after - before).toBeLessThan(calls);
  });
});

describe("POST /query on a connection whose database has xml2 and pg_prewarm installed", () => {
  let h: Harness;
  let target: Awaited<ReturnType<typeof createPgDatabase>>;
  let token: string;
  let connectionId: number;
  const LOCK_KEY = 434_343;

  beforeAll(async () => {
    h = await createHarness();
    target = await createPgDatabase("pulse_contrib_target");
    await target.query("CREATE EXTENSION xml2");
    await target.query("CREATE EXTENSION pg_prewarm");
    await target.query("CREATE TABLE docs (id int, doc text)");
    await target.query("INSERT INTO docs VALUES (1, '<a>x</a>')");
    const user = await h.newUser();
    token = user.token;
    const body = { db_type: "postgresql", host: PG.host, port: PG.port, database_name: target.name, username: PG.user, db_password: "unused" };
    connectionId = (await h.call("POST", "/databases/add_db_connection", { token, json: body })).body.db_connection.id as number;
  });
  afterAll(async () => {
    await h?.close();
    await target?.drop();
  });

  const advisoryLocksHeld = async () =>
    Number((await target.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = ${LOCK_KEY}`))[0]!.n);

  it("refuses xpath_table, which runs a query built from its text arguments, and no lock is left behind", async () => {
    // The criteria become `WHERE pg_advisory_lock(...) IS NOT NULL`: a session-level lock that
    // ROLLBACK keeps, taken where neither the guard nor the driver's text check could see it.
    const criteria = `replace('pg_advXsory_lock(${LOCK_KEY}) IS NOT NULL', 'X', 'i')`;
    const sql = `SELECT * FROM xpath_table('id', 'doc', 'docs', '/a', ${criteria}) AS x(id int, a text)`;
    const res = await h.call("POST", "/query", { token, json: { sql, connection_id: connectionId } });
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_refused", rule: "dangerous_function" });
    expect(res.body.detail).toContain("xpath_table");
    expect(await advisoryLocksHeld()).toBe(0);
  });

  it("refuses autoprewarm_dump_now, which writes a file on the database server", async () => {
    const res = await h.call("POST", "/query", { token, json: { sql: "SELECT autoprewarm_dump_now()", connection_id: connectionId } });
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_refused", rule: "dangerous_function" });
  });
});
