// Re-seals every sealed value of the metadata store under SECRETS_KEY (`pulse secrets rotate`,
// README, Rotating secrets), so that SECRETS_KEY_PREVIOUS can be dropped. The service goes on
// meanwhile: rows are read a batch at a time and each is rewritten only if it still holds the
// value read, so a connection or channel changed by the service in between keeps its change
// (it is read again, and is then under the current key, which is what every instance seals
// with once they all have it).

import { openSealed, sealSecret } from "../auth/secrets.js";
import { sealContext } from "../connectors/targets.js";
import { channelSealContext } from "../monitoring/notifiers.js";
import type { Db } from "../store/client.js";
import { replaceSealed, sealedBatch, sealedRows, type Reseal, type SealedColumn, type SealedRow } from "../store/sealed-values.js";

/** Every sealed column, with the context its values are bound to (their owner). */
const SEALED: readonly (SealedColumn & { context: (ownerId: number) => string })[] = [
  { table: "db_connections", column: "password_sealed", context: sealContext },
  { table: "notification_channels", column: "url_sealed", context: channelSealContext },
];

/** Rows read and rewritten at once: one short statement each, whatever the table's size. */
export const ROTATION_BATCH_ROWS = 200;
/** How many times a row changed under the rotation is read again before it is left for the
 * next run (a row rewritten that often is being changed by someone right now). */
const ATTEMPTS = 3;

export interface RowRef {
  table: SealedColumn["table"];
  id: number;
}

export interface RotationReport {
  /** Rewritten under the current key. */
  resealed: number;
  /** Already under it: nothing to do. */
  current: number;
  /** Opened by no key given: left as they are. */
  unreadable: RowRef[];
  /** Changed again at every attempt: left for the next run. */
  changing: RowRef[];
  /** Set when `stop` ended the walk with rows not yet read: the counts are of those before. */
  stopped?: true;
}

/** `keys`: the current key first (it seals), then the previous ones. `stop` ends the walk
 * between batches: a batch is one statement, so what was re-sealed stays so. */
export async function rotateSealedValues(db: Db, keys: readonly Buffer[], options: { batchRows?: number; stop?: AbortSignal } = {}): Promise<RotationReport> {
  const report: RotationReport = { resealed: 0, current: 0, unreadable: [], changing: [] };
  for (const where of SEALED) {
    for (let afterId = 0; ; ) {
      const batch = await sealedBatch(db, where, afterId, options.batchRows ?? ROTATION_BATCH_ROWS);
      if (batch.length === 0) break;
      if (options.stop?.aborted) return { ...report, stopped: true };
      afterId = batch.at(-1)!.id;
      await rotateBatch(db, where, keys, batch, report);
    }
  }
  return report;
}

async function rotateBatch(db: Db, where: (typeof SEALED)[number], keys: readonly Buffer[], batch: SealedRow[], report: RotationReport) {
  let rows = batch;
  for (let attempt = 1; rows.length > 0; attempt++) {
    const changes: Reseal[] = [];
    for (const row of rows) {
      const context = where.context(row.ownerId);
      let opened;
      try {
        opened = openSealed(row.sealed, keys, context);
      } catch {
        report.unreadable.push({ table: where.table, id: row.id });
        continue;
      }
      if (opened.keyIndex === 0) report.current += 1;
      else changes.push({ id: row.id, was: row.sealed, next: sealSecret(opened.plain, keys[0]!, context) });
    }
    const written = await replaceSealed(db, where, changes);
    report.resealed += written.size;
    const missed = changes.filter((c) => !written.has(c.id)).map((c) => c.id);
    if (missed.length > 0 && attempt === ATTEMPTS) {
      report.changing.push(...missed.map((id) => ({ table: where.table, id })));
      return;
    }
    // Changed (or deleted) since read: as it is now.
    rows = await sealedRows(db, where, missed);
  }
}
