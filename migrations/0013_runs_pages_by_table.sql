-- A page of a table's check runs (GET /api/tables/{id}/runs, newest first by started_at, then
-- id) is read from this index in its order. Before, the planner chose between sorting every
-- run of the table (millions on a long one-minute history) and walking every table's newest
-- runs backwards through the time index, filtering for this one: a table with few or no runs
-- (new, disabled, hourly) read the whole deployment's runs for each page.
-- Runs in the migration's transaction: check run writes wait while it is built. See README,
-- Production, "Upgrading".
CREATE INDEX "check_runs_table_started_idx" ON "check_runs" USING btree ("table_id","started_at","id");
