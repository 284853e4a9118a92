-- The audit trail's indexes are paid for on every statement Pulse runs: five full btrees become
-- the owner's key, a connection's pages (with the owner, so a filter on another user's
-- connection finds nothing at once), the rare outcomes only (partial) and time.
-- Runs in the migration's transaction: the table is locked while the new key and indexes are
-- built, so on a large trail audit writes (and with them statements, once the buffer is full)
-- wait for it. See README, Production, "Upgrading".
ALTER TABLE "audit_records" DROP CONSTRAINT "audit_records_pkey";--> statement-breakpoint
DROP INDEX "audit_records_owner_idx";--> statement-breakpoint
DROP INDEX "audit_records_connection_idx";--> statement-breakpoint
DROP INDEX "audit_records_outcome_idx";--> statement-breakpoint
ALTER TABLE "audit_records" ADD CONSTRAINT "audit_records_owner_id_id_pk" PRIMARY KEY("owner_id","id");--> statement-breakpoint
CREATE INDEX "audit_records_connection_idx" ON "audit_records" USING btree ("connection_id","owner_id","id");--> statement-breakpoint
CREATE INDEX "audit_records_outcome_idx" ON "audit_records" USING btree ("owner_id","outcome","id") WHERE "audit_records"."outcome" <> 'ok';
