// What a request body may be: uncompressed, in UTF-8, and within the size limit.
//
// Size limit. A declared Content-Length is checked from the header alone: hono's
// bodyLimit reads `req.raw.body`, which makes the Node adapter build a full web Request for
// every request (measured: ~15% of a small /query's CPU). Only chunked bodies, whose size is
// unknown up front, go through hono's streaming check.

import type { HttpBindings } from "@hono/node-server";
import type { Context, MiddlewareHandler, Next } from "hono";
import { bodyLimit } from "hono/body-limit";

import type { AppEnv } from "./context.js";
import type { Refuse } from "./errors.js";

/** Whether the request's body ended before it was whole: the client went away mid-body, or
 * sent a chunked body Node could not parse. Reading it then fails with Node's "aborted"
 * ECONNRESET, which the error handler would take for the metadata store's lost connection.
 * Not complete as well: a request without a body whose client left is aborted too. */
function bodyCutOff(c: Context<AppEnv>): boolean {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  return incoming !== undefined && !incoming.complete && incoming.readableAborted;
}

const CUT_OFF = "The request body ended before it was complete: the connection closed mid-body, or a chunk was malformed";

/** The largest request body Pulse takes (a statement, a question, a connection's settings). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** The 413's detail, here and where 100-continue refuses the body before it is sent. */
export const tooLargeDetail = (maxBytes: number) => `Request body larger than ${maxBytes} bytes`;

/** Runs `next` when the body may be within `maxBytes`; answers the 413 response otherwise.
 * A plain function, not a middleware: requestEdge calls it inline, saving a layer of hono's
 * middleware chain on every request. */
export function limitBody(maxBytes: number, refuse: Refuse): (c: Context<AppEnv>, next: Next) => Promise<unknown> | Response {
  const tooLarge = (c: Context<AppEnv>) => refuse(c, 413, "payload_too_large", tooLargeDetail(maxBytes));
  const streaming: MiddlewareHandler<AppEnv> = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return (c, next) => {
    const unreadable = unreadableBody(c);
    if (unreadable) return refuse(c, 415, "unsupported_media_type", unreadable);
    if (c.req.header("transfer-encoding")) {
      // The streaming check reads the whole body before `next`: a body cut off fails here, out
      // of the request's own handling (and its log line) unless answered here.
      return (streaming(c, next) as Promise<unknown>).catch((err: unknown) => {
        if (bodyCutOff(c)) return refuse(c, 400, "bad_request", CUT_OFF);
        throw err;
      });
    }
    const length = c.req.header("content-length");
    if (length !== undefined && !(Number(length) <= maxBytes)) return tooLarge(c);
    return next();
  };
}

/** Why a body cannot be read as sent, or null. Node hands the bytes on as they came: a
 * compressed body would be read as malformed JSON, and one in another charset decoded as UTF-8
 * (a Latin-1 password no longer the one it was). */
function unreadableBody(c: Context<AppEnv>): string | null {
  const encoding = c.req.header("content-encoding");
  if (encoding && encoding.trim().toLowerCase() !== "identity") {
    return `Content-Encoding ${encoding.slice(0, 40)} is not supported: send the body uncompressed`;
  }
  const charset = /;\s*charset\s*=\s*"?([^;"\s]*)/i.exec(c.req.header("content-type") ?? "")?.[1];
  // US-ASCII is UTF-8 too.
  if (charset !== undefined && !/^(utf-?8|us-ascii)$/i.test(charset)) return `charset=${charset.slice(0, 40)} is not supported: send the body as UTF-8`;
  return null;
}
