// Arguments several tools share.

import { z } from "zod";

import { MAX_ROW_ID, storableText } from "../../http/schemas.js";

/** A row's id (a connection's, a monitored table's): past the store's integer range is refused
 * as invalid arguments, as the HTTP routes answer 422, never a failed query. */
export const rowId = z.number().int().positive().max(MAX_ROW_ID);

/** Text an argument may hold: no NUL, no half of a surrogate pair (a model cutting an emoji in
 * two), refused as the tool's invalid arguments rather than failing where it is stored. */
export const textArg = storableText;
