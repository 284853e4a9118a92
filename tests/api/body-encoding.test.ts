// JSON bodies are UTF-8 (RFC 8259): a body in another encoding is refused as malformed JSON,
// never decoded with replacement characters and stored changed. Checked on a route validated by
// zod-openapi (registration), on the ones that read their own body (/query, /mcp), through
// app.request() and through a real server (the Node adapter reads bodies its own way), with a
// declared length and chunked.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";

let h: Harness;
let base: string;

beforeAll(async () => {
  h = await createHarness();
  base = (await h.serve()).url;
});
afterAll(async () => {
  await h?.close();
});

/** `json` with its non-ASCII characters written as Latin-1 bytes, as an old client would. */
const latin1 = (json: string) => Uint8Array.from(json, (ch) => ch.charCodeAt(0));
const utf8 = (json: string) => new TextEncoder().encode(json);

/** A body of bytes, sent as a real client sends it: with its length, or chunked. */
function send(path: string, bytes: Uint8Array, options: { token?: string; chunked?: boolean; headers?: Record<string, string> } = {}) {
  const body = options.chunked
    ? new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes.subarray(0, 5));
          controller.enqueue(bytes.subarray(5));
          controller.close();
        },
      })
    : bytes;
  return fetch(`${base}${path}`, {
    method: "POST",
    body,
    duplex: "half",
    headers: { "content-type": "application/json", ...(options.token && { authorization: `Bearer ${options.token}` }), ...options.headers },
  } as RequestInit);
}

describe("a JSON body that is not UTF-8", () => {
  it("is refused at registration, 400 malformed JSON, and nothing is stored: the same account registers afterwards in UTF-8", async () => {
    for (const chunked of [false, true]) {
      const email = `${uniqueName("renee")}@example.com`;
      const account = `{"name":"Renée Müller","email":"${email}","password":"correct horse battery"}`;
      const refused = await send("/users/", latin1(account), { chunked });
      expect(refused.status, `chunked: ${chunked}`).toBe(400);
      expect(await refused.json()).toMatchObject({ code: "bad_request", detail: "Malformed JSON in request body" });

      const registered = await send("/users/", utf8(account), { chunked });
      expect(registered.status, `chunked: ${chunked}`).toBe(201);
      expect(await registered.json()).toMatchObject({ name: "Renée Müller", email });
    }
  });

  it("is refused through app.request() as well (a web Request, not the Node adapter's)", async () => {
    const email = `${uniqueName("renee")}@example.com`;
    const res = await h.app.request("/users/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: latin1(`{"name":"Renée","email":"${email}","password":"correct horse battery"}`),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "bad_request", detail: "Malformed JSON in request body" });
  });

  it("is refused by /query and /mcp, which read their own bodies, before any statement runs", async () => {
    const user = await h.newConnectedUser();
    const query = await send("/query", latin1('{"sql":"SELECT \'é\' AS v"}'), { token: user.token });
    expect(query.status).toBe(400);
    expect(await query.json()).toMatchObject({ code: "bad_request", detail: "Malformed JSON in request body" });
    const accepted = await send("/query", utf8('{"sql":"SELECT \'é\' AS v"}'), { token: user.token });
    expect(accepted.status).toBe(200);
    expect(((await accepted.json()) as { data: { rows: unknown } }).data.rows).toEqual([["é"]]);

    const mcp = await send("/mcp", latin1('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"é":1}}'), {
      token: user.token,
      headers: { accept: "application/json, text/event-stream" },
    });
    expect(mcp.status).toBe(400);
    expect(await mcp.json()).toMatchObject({ code: "bad_request", error: { code: -32700 }, id: null });
  });
});

describe("a body sent compressed or in another charset", () => {
  it.each([
    [{ "content-encoding": "gzip" }, "Content-Encoding gzip is not supported: send the body uncompressed"],
    [{ "content-encoding": "br" }, "Content-Encoding br is not supported: send the body uncompressed"],
    [{ "content-type": "application/json; charset=utf-16" }, "charset=utf-16 is not supported: send the body as UTF-8"],
    [{ "content-type": "application/x-www-form-urlencoded; charset=iso-8859-1" }, "charset=iso-8859-1 is not supported: send the body as UTF-8"],
  ])("is refused with 415 saying what to send (%j), not read as malformed or as something else", async (headers, detail) => {
    const email = `${uniqueName("enc")}@example.com`;
    const res = await send("/users/", utf8(`{"name":"Enc","email":"${email}","password":"correct horse battery"}`), { headers });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ code: "unsupported_media_type", detail });
    // Nothing was stored: the same account registers afterwards, sent plainly.
    expect((await send("/users/", utf8(`{"name":"Enc","email":"${email}","password":"correct horse battery"}`))).status).toBe(201);
  });

  it.each(['application/json; charset="UTF-8"', "application/json; charset=us-ascii"])("takes %s with identity encoding", async (type) => {
    const email = `${uniqueName("utf8")}@example.com`;
    const headers = { "content-type": type, "content-encoding": "identity" };
    expect((await send("/users/", utf8(`{"name":"U","email":"${email}","password":"correct horse battery"}`), { headers })).status).toBe(201);
  });
});
