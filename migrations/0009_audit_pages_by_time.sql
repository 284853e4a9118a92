-- The audit trail's pages go newest first by the statement's time, and each index reads its
-- records in that order: a window far back (`to` a month ago) costs what its page does, where
-- the order by id walked every newer record of the owner first (0.3 s per 2 million, so about
-- the store's statement timeout for a large owner). The time index (for retention) is
-- replaced by the owner's: the same number of btrees to write per record.
-- Runs in the migration's transaction: the table is locked while the indexes are built, so on
-- a large trail audit writes (and with them statements, once the buffer is full) wait for it.
-- See README, Production, "Upgrading".
DROP INDEX "audit_records_at_idx";--> statement-breakpoint
DROP INDEX "audit_records_connection_idx";--> statement-breakpoint
DROP INDEX "audit_records_outcome_idx";--> statement-breakpoint
CREATE INDEX "audit_records_owner_at_idx" ON "audit_records" USING btree ("owner_id","at");--> statement-breakpoint
CREATE INDEX "audit_records_connection_idx" ON "audit_records" USING btree ("connection_id","owner_id","at");--> statement-breakpoint
CREATE INDEX "audit_records_outcome_idx" ON "audit_records" USING btree ("owner_id","outcome","at") WHERE "audit_records"."outcome" <> 'ok';