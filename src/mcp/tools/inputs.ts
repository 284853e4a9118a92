// Arguments several tools share.

import { z } from "zod";

import { MAX_ROW_ID } from "../../http/schemas.js";

export const connectionId = z.number().int().positive().max(MAX_ROW_ID);
