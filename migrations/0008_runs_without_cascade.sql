-- A table's check runs are no longer deleted with it by a cascade, which could run past the
-- store's statement timeout on a long history: the scheduler purges them in batches
-- (src/store/monitoring-runs.ts, purgeOrphanedRuns). The outbox gets the indexes its own
-- cascades need (a deleted channel or alert scanned it whole). The outbox is small next to
-- the runs, so building them holds its writes only briefly.
ALTER TABLE "check_runs" DROP CONSTRAINT "check_runs_table_id_monitored_tables_id_fk";
--> statement-breakpoint
CREATE INDEX "sent_notifications_channel_idx" ON "sent_notifications" USING btree ("channel_id");--> statement-breakpoint
CREATE INDEX "sent_notifications_alert_idx" ON "sent_notifications" USING btree ("alert_id");