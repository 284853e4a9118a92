CREATE TABLE "audit_records" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_records_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"at" timestamp with time zone NOT NULL,
	"owner_id" integer NOT NULL,
	"connection_id" integer NOT NULL,
	"source" text NOT NULL,
	"sql" text NOT NULL,
	"sql_length" integer NOT NULL,
	"sql_sha256" text,
	"row_count" integer,
	"duration_ms" double precision NOT NULL,
	"outcome" text NOT NULL,
	"error_code" text,
	"rule" text
);
--> statement-breakpoint
CREATE INDEX "audit_records_owner_idx" ON "audit_records" USING btree ("owner_id","id");--> statement-breakpoint
CREATE INDEX "audit_records_connection_idx" ON "audit_records" USING btree ("owner_id","connection_id","id");--> statement-breakpoint
CREATE INDEX "audit_records_outcome_idx" ON "audit_records" USING btree ("owner_id","outcome","id");--> statement-breakpoint
CREATE INDEX "audit_records_at_idx" ON "audit_records" USING btree ("at");