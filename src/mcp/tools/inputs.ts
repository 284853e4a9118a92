// Arguments several tools share.

import { z } from "zod";

import { MAX_ROW_ID } from "../../http/schemas.js";

/** A row's id (a connection's, a monitored table's): past the store's integer range is refused
 * as invalid arguments, as the HTTP routes answer 422, never a failed query. */
export const rowId = z.number().int().positive().max(MAX_ROW_ID);
