// JSON text is UTF-8 (RFC 8259, section 8.1). The Node adapter decodes a body with replacement
// characters, so a name or a password sent in another encoding (Latin-1 from an old client)
// would be stored changed, without a word. Every reader of a JSON body (zod-openapi's
// validators, jsonBodyOf) goes through hono's c.req.text(), cached in c.req.bodyCache.text:
// an entry there, read on first use, makes them all decode strictly, so that a body that is
// not UTF-8 is malformed JSON (400).

import type { HonoRequest } from "hono";

/** zod-openapi's test of a declared JSON media type (parameters allowed, nothing else): the
 * same on every route, whichever checks its body. */
export const JSON_MEDIA_TYPE = /^application\/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Makes a JSON body decode as strict UTF-8 for every reader, read when first asked for: a
 * request answered without its body (401, 404) never reads it. */
export function decodeJsonBodyStrictly(req: HonoRequest): void {
  const type = req.header("content-type");
  if (!type || !JSON_MEDIA_TYPE.test(type)) return;
  let text: Promise<string> | undefined;
  const read = () => (text ??= req.raw.arrayBuffer().then((bytes) => utf8.decode(bytes)));
  // Promise-like rather than a promise, so that nothing is read before a reader asks (hono
  // awaits the entry or calls its then()).
  const lazy = {
    then: (ok, fail) => read().then(ok, fail),
    catch: (fail) => read().catch(fail),
    finally: (done) => read().finally(done),
  } as Pick<Promise<string>, "then" | "catch" | "finally">;
  (req.bodyCache as { text?: typeof lazy }).text = lazy;
}
