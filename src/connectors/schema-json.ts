// A schema snapshot as JSON in UTF-8, written a table at a time in slices (src/in-slices.ts):
// JSON.stringify of a 30 MB snapshot held the event loop for 250-330 ms.

import { forEachInSlices } from "../in-slices.js";
import type { SchemaSnapshot } from "./types.js";

export async function schemaJsonInSlices(snapshot: SchemaSnapshot): Promise<Uint8Array<ArrayBuffer>> {
  const { tables, ...rest } = snapshot;
  // `{"dialect":...,"introspected_at":...,"tables":[` and `]}` around the tables.
  const whole = JSON.stringify({ ...rest, tables: [] });
  const parts = [Buffer.from(whole.slice(0, -2))];
  await forEachInSlices(tables, (table, i) => parts.push(Buffer.from(`${i === 0 ? "" : ","}${JSON.stringify(table)}`)));
  parts.push(Buffer.from("]}"));
  return Buffer.concat(parts);
}
