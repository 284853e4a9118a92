ALTER TABLE "monitored_tables" ADD COLUMN "schedule" text;--> statement-breakpoint
ALTER TABLE "monitored_tables" ADD COLUMN "timezone" text;