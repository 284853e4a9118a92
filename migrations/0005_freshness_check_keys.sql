-- A freshness check's key now names its column ("freshness:updated_at"), so a table may
-- watch several. Existing runs and alerts (at most one freshness check per table until now)
-- take the new key, keeping their history and any open alert.
UPDATE "check_runs" AS r SET "check_key" = 'freshness:' || (c ->> 'column')
FROM "monitored_tables" AS t, jsonb_array_elements(t."checks") AS c
WHERE r."table_id" = t."id" AND r."check_key" = 'freshness' AND c ->> 'kind' = 'freshness';
--> statement-breakpoint
UPDATE "alerts" AS a SET "check_key" = 'freshness:' || (c ->> 'column')
FROM "monitored_tables" AS t, jsonb_array_elements(t."checks") AS c
WHERE a."table_id" = t."id" AND a."check_key" = 'freshness' AND c ->> 'kind' = 'freshness';
