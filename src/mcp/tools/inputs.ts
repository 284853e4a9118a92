// Arguments several tools share.

import { z } from "zod";

import { MAX_ROW_ID } from "../../http/schemas.js";

/** A row's id (a connection's, a monitored table's): past the store's integer range is refused
 * as invalid arguments, as the HTTP routes answer 422, never a failed query. */
export const rowId = z.number().int().positive().max(MAX_ROW_ID);

/** A tool's arguments: an unknown one is refused (as the HTTP routes answer 422 naming it), not
 * dropped, so a misspelt `max_row` or `intervl_seconds` never runs on the default instead. The
 * SDK makes a bare shape a stripping object; its JSON Schema also tells clients so
 * (additionalProperties: false). */
export const toolInput = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape);
