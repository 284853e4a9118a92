-- The audit trail is kept in groups: the records of a batch that share their owner,
-- connection, source, API key, outcome and second, one row with an array per field. A row and
-- its index entries per record cost the store 8-9 µs of CPU a statement; groups 4-7 µs, and
-- far less space when they gather many records (bench/audit-writes.ts). The records move into
-- groups here (at most 500 a group), in the migration's transaction: on a large trail this
-- takes a while (about 15 s per million records), and audit writes wait for it (README,
-- Production, "Upgrading"). Their ids change; `audit_records` becomes a view that shows one
-- row per record, as before (a NULL array reads as NULL for each record: multi-argument unnest
-- pads it).
CREATE TABLE "audit_groups" (
	"id" bigint GENERATED ALWAYS AS IDENTITY (sequence name "audit_groups_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"owner_id" integer NOT NULL,
	"connection_id" integer NOT NULL,
	"source" text NOT NULL,
	"api_key_id" integer,
	"first_at" timestamp with time zone NOT NULL,
	"last_at" timestamp with time zone NOT NULL,
	"outcome" text NOT NULL,
	"at" timestamp with time zone[] NOT NULL,
	"sql" text[] NOT NULL,
	"sql_length" integer[] NOT NULL,
	"sql_sha256" text[],
	"row_count" integer[] NOT NULL,
	"duration_ms" double precision[] NOT NULL,
	"error_code" text[],
	"rule" text[],
	CONSTRAINT "audit_groups_owner_id_id_pk" PRIMARY KEY("owner_id","id")
);
--> statement-breakpoint
INSERT INTO "audit_groups" ("owner_id", "connection_id", "source", "api_key_id", "outcome", "first_at", "last_at", "at", "sql", "sql_length", "sql_sha256", "row_count", "duration_ms", "error_code", "rule")
SELECT "owner_id", "connection_id", "source", "api_key_id", "outcome", min("at"), max("at"),
	array_agg("at" ORDER BY "id"), array_agg("sql" ORDER BY "id"), array_agg("sql_length" ORDER BY "id"),
	CASE WHEN bool_or("sql_sha256" IS NOT NULL) THEN array_agg("sql_sha256" ORDER BY "id") END,
	array_agg("row_count" ORDER BY "id"), array_agg("duration_ms" ORDER BY "id"),
	CASE WHEN bool_or("error_code" IS NOT NULL) THEN array_agg("error_code" ORDER BY "id") END,
	CASE WHEN bool_or("rule" IS NOT NULL) THEN array_agg("rule" ORDER BY "id") END
FROM (
	SELECT *, date_trunc('second', "at") AS "second",
		(row_number() OVER (PARTITION BY "owner_id", "connection_id", "source", "api_key_id", "outcome", date_trunc('second', "at") ORDER BY "id") - 1) / 500 AS "part"
	FROM "audit_records"
) "records"
GROUP BY "owner_id", "connection_id", "source", "api_key_id", "outcome", "second", "part"
ORDER BY min("id");
--> statement-breakpoint
DROP TABLE "audit_records";--> statement-breakpoint
CREATE INDEX "audit_groups_owner_at_idx" ON "audit_groups" USING btree ("owner_id","last_at");--> statement-breakpoint
CREATE INDEX "audit_groups_connection_idx" ON "audit_groups" USING btree ("connection_id","owner_id","last_at");--> statement-breakpoint
CREATE INDEX "audit_groups_outcome_idx" ON "audit_groups" USING btree ("owner_id","outcome","last_at") WHERE "audit_groups"."outcome" <> 'ok';--> statement-breakpoint
CREATE INDEX "audit_groups_api_key_idx" ON "audit_groups" USING btree ("owner_id","api_key_id","last_at") WHERE "audit_groups"."api_key_id" IS NOT NULL;--> statement-breakpoint
-- A record's id: its group's id x 1000 plus its place in the group (MAX_GROUP_RECORDS).
CREATE VIEW "audit_records" AS
SELECT g."id" * 1000 + r."n" - 1 AS "id", r."at", g."owner_id", g."connection_id", g."source", g."api_key_id", r."sql", r."sql_length",
	r."sql_sha256", r."row_count", r."duration_ms", g."outcome", r."error_code", r."rule"
FROM "audit_groups" g
CROSS JOIN LATERAL unnest(g."at", g."sql", g."sql_length", g."sql_sha256", g."row_count", g."duration_ms", g."error_code", g."rule")
	WITH ORDINALITY AS r("at", "sql", "sql_length", "sql_sha256", "row_count", "duration_ms", "error_code", "rule", "n");
