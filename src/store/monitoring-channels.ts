// Repository of notification channels (webhook and Slack URLs, sealed at rest), owner-scoped.

import { and, asc, eq, inArray } from "drizzle-orm";

import type { Db } from "./client.js";
import { notificationChannels, type NotificationChannelRow } from "./schema.js";

export type NewChannel = Omit<typeof notificationChannels.$inferInsert, "id" | "createdAt">;

export async function insertChannel(db: Db, input: NewChannel): Promise<NotificationChannelRow> {
  const [row] = await db.insert(notificationChannels).values(input).returning();
  return row!;
}

export async function listChannels(db: Db, ownerId: number): Promise<NotificationChannelRow[]> {
  return db.select().from(notificationChannels).where(eq(notificationChannels.ownerId, ownerId)).orderBy(asc(notificationChannels.id));
}

export async function getChannel(db: Db, ownerId: number, id: number): Promise<NotificationChannelRow | null> {
  const [row] = await db
    .select()
    .from(notificationChannels)
    .where(and(eq(notificationChannels.id, id), eq(notificationChannels.ownerId, ownerId)))
    .limit(1);
  return row ?? null;
}

/** Channels by id whoever owns them: for delivering notifications already addressed to them. */
export async function channelsByIds(db: Db, ids: number[]): Promise<NotificationChannelRow[]> {
  if (ids.length === 0) return [];
  return db.select().from(notificationChannels).where(inArray(notificationChannels.id, ids));
}

export async function updateChannel(
  db: Db,
  ownerId: number,
  id: number,
  patch: Partial<Pick<NotificationChannelRow, "name" | "enabled">>,
): Promise<NotificationChannelRow | null> {
  const [row] = await db
    .update(notificationChannels)
    .set(patch)
    .where(and(eq(notificationChannels.id, id), eq(notificationChannels.ownerId, ownerId)))
    .returning();
  return row ?? null;
}

export async function deleteChannel(db: Db, ownerId: number, id: number): Promise<boolean> {
  const rows = await db
    .delete(notificationChannels)
    .where(and(eq(notificationChannels.id, id), eq(notificationChannels.ownerId, ownerId)))
    .returning({ id: notificationChannels.id });
  return rows.length > 0;
}
