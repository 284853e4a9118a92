-- The open alerts (an incident not over) by owner: a result's health reads a user's every few
-- seconds, and every scrape of /metrics counts the deployment's. Both read all alerts before,
-- resolved ones included, which stay (one per table and check).
-- Runs in the migration's transaction: alert updates wait while it is built (it reads the
-- alerts, a row per table and check: quick). See README, Production, "Upgrading".
CREATE INDEX "alerts_open_idx" ON "alerts" USING btree ("owner_id") WHERE "alerts"."status" IN ('open', 'resolving');
