// Pads a schema with realistic distractor tables, deterministically from a seed, so schema
// ranking can be measured on "hundreds to thousands of tables" built around real questions.
//
// Design, so that the measurement is honest rather than easy:
// - Names look like a company warehouse: a domain prefix, an entity, often a suffix
//   (`crm_contacts`, `inv_stock_item_history`, `hr_payroll_runs`, `evt_concert_archive`,
//   `sales_singer_royalties`).
// - About half of the 25 domains are events, media, travel, education, museums, geography,
//   vets, games, fleets, orchestras, social, property and documents (concert, singer, stadium,
//   flight, airport, museum, student, course, country, language, pet, ship, player, template,
//   employee...): the words Spider questions use, so distractors compete with the real tables
//   on the very words of the questions. The rest is plain business vocabulary (invoices,
//   tickets, shipments, payroll...). The vocabulary is hand-written with Spider's domains in
//   mind, not taken from its questions.
// - Columns: an `id` primary key, 0-2 `<entity>_id` foreign keys to earlier tables of the same
//   domain, then columns drawn from the entity's own words, its domain's and a generic pool
//   shared with real schemas (`name`, `created_at`, `country`, `city`, `year`, `age`, `status`...).
// - Some distractors reference a real table (`<real>_id -> real.pk`, ~4%), as a royalties
//   table would reference `singer`: those become the real tables' foreign-key neighbours.
// - ~15% carry a comment in words of their entity; types follow the column name.
// - Names never collide with the real tables (case-insensitive); the result is sorted by
//   name, the way introspection returns it, so real tables are not at a fixed place.
// No distractor copies a real table, and every name carries a domain prefix, so none is an
// exact twin of a gold table: the right table stays findable, but not by luck.

import type { ColumnSchema, ForeignKey, SchemaSnapshot, TableSchema } from "../../src/connectors/types.js";
import { seededRandom } from "./random.js";

/** prefix: [domain attributes, entities as "entity:attr attr ..."]. */
const DOMAINS: Record<string, [string, string[]]> = {
  crm: ["owner region segment", ["contact:email phone first_name last_name", "account:industry tier", "lead:source score", "opportunity:stage amount close_date", "campaign:channel budget", "note:body"]],
  inv: ["warehouse_code sku", ["warehouse:address city capacity", "bin:aisle shelf", "stock_item:quantity unit_cost", "supplier:contact_name country", "transfer:quantity shipped_at", "count:counted_at variance"]],
  hr: ["department cost_center", ["employee:first_name last_name hire_date salary", "payroll_run:period gross net", "position:grade", "leave_request:days reason", "review:rating reviewer", "benefit:provider plan"]],
  fin: ["currency fiscal_year", ["invoice:total due_date", "payment:amount method", "ledger_entry:debit credit", "budget:amount", "expense:category amount", "tax_rate:rate jurisdiction"]],
  sales: ["region channel", ["order:total order_date", "order_line:quantity unit_price", "quote:valid_until", "commission:rate amount", "singer_royalty:amount period", "territory:manager"]],
  ship: ["carrier tracking_number", ["shipment:weight shipped_at", "parcel:weight dimensions", "route:origin destination distance", "vessel:tonnage flag", "port:country city", "manifest:declared_value"]],
  evt: ["venue capacity", ["concert:event_date attendance", "ticket:price seat", "stadium:capacity city opening_year", "performer:genre fee", "festival:theme year", "booking:booked_at"]],
  media: ["label genre", ["song:title duration release_year", "album:title release_year", "artist:nationality debut_year", "playlist:owner", "stream:played_at seconds", "singer:stage_name birth_year"]],
  travel: ["booking_ref fare_class", ["flight:flight_number departure arrival", "airport:iata city country", "airline:abbreviation alliance", "itinerary:traveller", "hotel:stars city", "lounge:terminal"]],
  edu: ["term campus", ["student:first_name last_name age major", "course:credits level", "teacher:hometown age", "enrollment:grade enrolled_at", "classroom:building capacity", "exam:exam_date max_score"]],
  museum: ["gallery curator", ["exhibit:opening_date theme", "visitor:age membership_level", "loan:lender due_date", "artwork:artist year", "membership:level price", "tour:guide group_size"]],
  geo: ["iso_code population", ["country:continent region capital", "city:district population", "region:area", "language:is_official percentage", "timezone:utc_offset", "postal_area:zip"]],
  vet: ["clinic species", ["pet:pet_type age weight", "owner:first_name phone", "vaccination:vaccine given_at", "appointment:scheduled_at reason", "prescription:drug dose", "kennel:size"]],
  games: ["season league", ["player:nationality height earnings", "tournament:prize year", "match:score played_at", "team:coach founded", "poker_table:stakes", "ranking:points rank"]],
  docs: ["workspace locale", ["document:title version", "template:template_type version", "paragraph:text position", "revision:author changed_at", "attachment:file_name size", "folder:path"]],
  fleet: ["depot operator", ["ship:ship_type tonnage launched", "vehicle:plate model", "driver:license age", "trip:distance started_at", "maintenance:cost done_at", "fuel_log:liters"]],
  prop: ["agent listing_status", ["property:address room_count price", "listing:listed_at price", "feature:feature_type", "viewing:viewed_at", "lease:rent start_date", "valuation:value"]],
  social: ["platform visibility", ["friend_request:accepted_at", "follow:followed_at", "like:liked_at", "post:body likes", "comment:body", "profile:bio grade"]],
  mkt: ["campaign_code audience", ["email_send:sent_at opened", "ad_spend:amount impressions", "landing_page:url", "survey:question", "promo_code:discount", "segment:rule"]],
  sup: ["queue priority", ["ticket:subject opened_at", "agent:team shift", "sla:target_hours", "escalation:level", "chat:started_at", "csat:score"]],
  ops: ["site environment", ["server:hostname ip", "incident:severity opened_at", "deploy:version deployed_at", "alert:severity", "backup:size taken_at", "on_call:week"]],
  proj: ["portfolio phase", ["project:start_date end_date budget", "task:due_date estimate", "milestone:due_date", "timesheet:hours", "risk:impact likelihood", "resource:role"]],
  audit: ["actor ip_address", ["login:succeeded", "change:entity_name old_value new_value", "export:row_count", "permission:scope", "access_review:decision", "policy:version"]],
  legal: ["matter jurisdiction", ["contract:signed_at value", "clause:text", "case:filed_at court", "counsel:firm", "nda:expires_at", "claim:amount"]],
  orch: ["ensemble season", ["conductor:nationality age", "musician:instrument", "rehearsal:hall", "performance:show_date attendance", "score_sheet:composer", "record_deal:company year"]],
};
const SUFFIXES = ["", "", "", "history", "log", "archive", "stats", "daily", "snapshot", "map", "audit", "staging", "notes", "links", "events", "summary", "v2", "backup", "queue", "import"];
const GENERIC = ["name", "title", "code", "status", "type", "description", "notes", "amount", "country", "city", "year", "age", "created_at", "updated_at", "created_by", "is_active", "rank", "score", "level", "version", "source", "external_ref", "start_date", "end_date", "email", "region"];
const COMMENTS = ["Nightly snapshot of {e} records", "Legacy {e} data, kept for audit", "{e} entries imported from the old system", "One row per {e} and day", "Denormalised {e} view for reporting"];

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const plural = (word: string) => (/(?:s|x|ch|sh)$/.test(word) ? `${word}es` : /[^aeiou]y$/.test(word) ? `${word.slice(0, -1)}ies` : `${word}s`);

const TYPE_BY_WORD: [RegExp, string][] = [
  [/^(?:id|at)$/, "integer"],
  [/^(?:date|expires|launched|until)$/, "date"],
  [/^(?:amount|price|cost|total|salary|rate|value|fee|gross|net|debit|credit|budget|earnings|rent|discount|prize)$/, "numeric(12,2)"],
  [/^(?:is|opened|succeeded)$/, "boolean"],
  [/^(?:year|age|quantity|rank|level|version|count|capacity|hours|days|size|score|points|population|attendance|weight|height|distance|liters|seconds|tonnage|credits|stars|stakes|dose)$/, "integer"],
];

/** By the column's last word (`*_id`, `*_at`, `*_date`), else its first (`is_*`), else text. */
function typeOf(column: string, random: () => number): string {
  const words = column.split("_");
  if (words.at(-1) === "at") return "timestamp";
  for (const word of [words.at(-1)!, words[0]!]) {
    for (const [re, type] of TYPE_BY_WORD) if (re.test(word)) return type;
  }
  return pick(random, ["varchar(64)", "varchar(255)", "text", "varchar(32)"]);
}

/** Distractor tables only (no real table), `count` of them, for a schema whose tables are `real`. */
export function distractorTables(real: readonly TableSchema[], count: number, seed: number): TableSchema[] {
  const random = seededRandom(seed);
  const taken = new Set(real.map((t) => t.name.toLowerCase()));
  const referable = real.filter((t) => t.kind === "table" && t.primary_key.length === 1);
  const byDomain = new Map<string, { table: TableSchema; entity: string }[]>();
  const out: TableSchema[] = [];
  const prefixes = Object.keys(DOMAINS);
  for (let attempts = 0; out.length < count; attempts++) {
    const prefix = pick(random, prefixes);
    const [domainWords, entities] = DOMAINS[prefix]!;
    const [entity, entityWords = ""] = pick(random, entities).split(":") as [string, string?];
    const suffix = pick(random, SUFFIXES);
    let name = suffix ? `${prefix}_${entity}_${suffix}` : `${prefix}_${plural(entity)}`;
    if (taken.has(name)) {
      if (attempts < count * 20) continue;
      name = `${name}_${out.length}`; // vocabulary exhausted: number the rest
    }
    taken.add(name);

    const columns: ColumnSchema[] = [{ name: "id", type: "integer", nullable: false, comment: null }];
    const foreignKeys: ForeignKey[] = [];
    const used = new Set(["id"]);
    const add = (col: string, nullable = random() < 0.6) => {
      if (used.has(col)) return false;
      used.add(col);
      columns.push({ name: col, type: typeOf(col, random), nullable, comment: null });
      return true;
    };
    const siblings = byDomain.get(prefix) ?? [];
    for (let k = Math.floor(random() * 3); k > 0 && siblings.length > 0; k--) {
      const target = pick(random, siblings);
      const col = `${target.entity}_id`;
      if (add(col, false)) foreignKeys.push({ columns: [col], references: { schema: null, table: target.table.name, columns: ["id"] } });
    }
    if (referable.length > 0 && random() < 0.04) {
      const target = pick(random, referable);
      const col = `${target.name.toLowerCase()}_id`;
      if (add(col, false)) foreignKeys.push({ columns: [col], references: { schema: null, table: target.name, columns: [target.primary_key[0]!] } });
    }
    const pool = [...entityWords.split(" "), ...domainWords.split(" ")].filter(Boolean);
    for (const col of pool) if (random() < 0.7) add(col);
    for (let k = 2 + Math.floor(random() * 6); k > 0; k--) add(pick(random, GENERIC));

    const table: TableSchema = {
      schema: null,
      name,
      kind: random() < 0.05 ? "view" : "table",
      comment: random() < 0.15 ? pick(random, COMMENTS).replace("{e}", entity.replaceAll("_", " ")) : null,
      estimated_rows: Math.floor(random() ** 3 * 5_000_000),
      columns,
      primary_key: ["id"],
      foreign_keys: foreignKeys,
    };
    byDomain.set(prefix, [...siblings, { table, entity }]);
    out.push(table);
  }
  return out;
}

/** The snapshot with distractors added up to `totalTables` tables, sorted by name. */
export function padSchema(snapshot: SchemaSnapshot, totalTables: number, seed: number): SchemaSnapshot {
  const extra = distractorTables(snapshot.tables, Math.max(0, totalTables - snapshot.tables.length), seed);
  const tables = [...snapshot.tables, ...extra].sort((a, b) => (a.name.toLowerCase() < b.name.toLowerCase() ? -1 : a.name.toLowerCase() > b.name.toLowerCase() ? 1 : 0));
  return { ...snapshot, tables };
}

// ---- writing a snapshot into a real SQLite file (benchmarks compare against LangChain, whose
// SqlDatabase needs a database, not a snapshot) ---------------------------------------------

export const quoteName = (name: string) => `"${name.replaceAll('"', '""')}"`;

export function createTableSql(t: TableSchema): string {
  const parts = t.columns.map((c) => `${quoteName(c.name)} ${c.type}${c.nullable ? "" : " NOT NULL"}`);
  if (t.primary_key.length > 0) parts.push(`PRIMARY KEY (${t.primary_key.map(quoteName).join(", ")})`);
  for (const fk of t.foreign_keys) {
    parts.push(
      `FOREIGN KEY (${fk.columns.map(quoteName).join(", ")}) REFERENCES ${quoteName(fk.references.table)} (${fk.references.columns.map(quoteName).join(", ")})`,
    );
  }
  return `CREATE TABLE ${quoteName(t.name)} (${parts.join(", ")})`;
}

/** A plausible value for row `i` of a made-up table. */
export function sampleValue(column: string, type: string, i: number): string | number {
  if (/int|numeric|real|number/.test(type)) return column === "id" ? i : i * 17;
  if (/date|time/.test(type)) return `2024-0${i}-1${i} 09:3${i}:00`;
  if (type === "boolean") return i % 2;
  return `${column.replaceAll("_", " ")} ${i}`;
}
