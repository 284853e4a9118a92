// Drizzle schema of Pulse's own metadata (PostgreSQL dialect, also served by PGlite).
// `npm run db:generate` turns changes here into a migration under migrations/.

import { sql } from "drizzle-orm";
import { boolean, index, integer, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

export const users = pgTable(
  "users",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    name: text("name").notNull(),
    /** Stored lower-cased, so uniqueness is case-insensitive. */
    email: text("email").notNull(),
    passwordHash: text("password_hash").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("users_email_key").on(t.email)],
);

export const dbConnections = pgTable(
  "db_connections",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    dbType: text("db_type", { enum: ["postgresql", "mysql", "sqlite"] }).notNull(),
    host: text("host").notNull().default(""),
    port: integer("port").notNull().default(0),
    databaseName: text("database_name").notNull(),
    username: text("username").notNull().default(""),
    /** AES-256-GCM sealed password (src/auth/secrets.ts); never the clear text. */
    passwordSealed: text("password_sealed").notNull(),
    ssl: boolean("ssl").notNull().default(false),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true })
      .notNull()
      .defaultNow()
      .$onUpdate(() => sql`now()`),
  },
  (t) => [index("db_connections_owner_idx").on(t.ownerId)],
);

export type UserRow = typeof users.$inferSelect;
export type DbConnectionRow = typeof dbConnections.$inferSelect;
