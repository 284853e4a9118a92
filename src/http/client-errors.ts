// What Node's HTTP server answers by itself, before any route sees a request: a request it
// cannot parse (400), headers larger than it takes (431), a request not received in time
// (408), an Expect it does not know (417), and 100-continue. Node answers those with an empty
// body; here they are JSON {detail, code} like every other error, so a client can tell what to
// fix, and a body announced larger than Pulse takes is refused before it is sent.

import { maxHeaderSize, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { tooLargeDetail } from "./body-limit.js";
import { errorBody, withJsonRpcError } from "./errors.js";

export interface ReceiveLimits {
  /** HTTP_HEADERS_TIMEOUT_MS. */
  headersTimeoutMs: number;
  /** HTTP_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs: number;
  maxBodyBytes: number;
  logger: Logger;
  /** Counts these answers with the app's (route "unmatched"): a flood of 408s is how a slow
   * client attack shows. */
  metrics: Pick<Metrics, "request">;
  /** Paths whose refusals carry a JSON-RPC error too (errors.ts), these among them. */
  jsonRpcPaths: ReadonlySet<string>;
}

/** How often Node looks for requests past their timeouts (its default, 30 s, would let a
 * request take up to 30 s more than its limit). */
const CHECK_EVERY_MS = 1000;

/** createServer's options for `limits`. */
export const receiveOptions = (limits: ReceiveLimits) => ({
  headersTimeout: limits.headersTimeoutMs,
  requestTimeout: limits.requestTimeoutMs,
  connectionsCheckingInterval: CHECK_EVERY_MS,
});

/** The error body for a request to `url` (unknown when Node could not read it). */
function bodyFor(limits: ReceiveLimits, url: string | undefined, status: number, code: string, detail: string): string {
  const body = errorBody(code, detail);
  const path = url?.split("?", 1)[0];
  return JSON.stringify(path !== undefined && limits.jsonRpcPaths.has(path) ? withJsonRpcError(body, status) : body);
}

/** A whole response for a socket no ServerResponse owns, closing the connection. */
function rawResponse(status: number, body: string): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

function answer(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), Connection: "close" }).end(body);
}

/** What went wrong with a request Node could not take, as the status Node would answer. */
function clientErrorOf(err: NodeJS.ErrnoException & { reason?: string }, limits: ReceiveLimits): [number, string, string] {
  switch (err.code) {
    case "HPE_HEADER_OVERFLOW":
      return [431, "headers_too_large", `The request's headers (its URL and cookies included) are larger than this server takes (${maxHeaderSize / 1024} KiB)`];
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return [413, "payload_too_large", "The request's chunk extensions are larger than this server takes"];
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [
        408,
        "request_timeout",
        `The request did not arrive in time: headers within ${limits.headersTimeoutMs} ms (HTTP_HEADERS_TIMEOUT_MS), the whole request within ${limits.requestTimeoutMs} ms (HTTP_REQUEST_TIMEOUT_MS)`,
      ];
    default:
      return [400, "bad_request", `The request is not valid HTTP/1.1: ${err.reason ?? err.code ?? err.message}`];
  }
}

/** Installs the answers on `server`. */
export function answerClientErrors(server: Server, limits: ReceiveLimits): void {
  server.on("clientError", (err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex) => {
    // As Node's own handler: no answer once the peer is gone, or once a response on this
    // socket has begun (a second one would corrupt it).
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === "ECONNRESET" || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, code, detail] = clientErrorOf(err, limits);
    limits.logger.info({ status, code, reason: err.reason ?? err.code }, "request refused by the HTTP parser");
    // The method may not have been read: "other".
    limits.metrics.request("other", null, status, null);
    // Written, then destroyed as Node's own handler does: end() would only half-close a socket
    // (the server allows half-open ones), leaving the client to finish a request it was told
    // timed out, which would then run, on a connection no timeout watches any more.
    // The request's path, when Node had read it (a body that never came in time).
    socket.write(rawResponse(status, bodyFor(limits, inFlight?.req?.url, status, code, detail)));
    socket.destroy();
  });
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    limits.metrics.request(req.method ?? "other", null, 417, null);
    answer(res, 417, bodyFor(limits, req.url, 417, "expectation_failed", `Expect: ${req.headers.expect} is not supported; send the request without it (or with Expect: 100-continue)`));
  });
  server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
    // Refused before the client sends a body that would be refused anyway.
    const length = Number(req.headers["content-length"]);
    if (length > limits.maxBodyBytes) {
      // Answered before the app sees the request, so logged here as the parser's refusals are
      // (the path without its query string, which may carry a token, as request-log.ts does).
      limits.logger.info({ status: 413, code: "payload_too_large", method: req.method, path: req.url?.split("?", 1)[0]?.slice(0, 200) }, "request refused before its body was sent");
      limits.metrics.request(req.method ?? "other", null, 413, null);
      answer(res, 413, bodyFor(limits, req.url, 413, "payload_too_large", tooLargeDetail(limits.maxBodyBytes)));
      return;
    }
    res.writeContinue();
    server.emit("request", req, res);
  });
}
