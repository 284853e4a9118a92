CREATE TABLE "audit_writes" (
	"writer" uuid PRIMARY KEY NOT NULL,
	"batch" uuid NOT NULL,
	"at" timestamp with time zone NOT NULL
);
