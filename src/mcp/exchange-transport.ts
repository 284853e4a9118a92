// The SDK transport under each pooled MCP server: one JSON-RPC message handed in by the route
// (route.ts, which does the Streamable HTTP part: headers, body, status), and its response
// handed back as a promise. The SDK's own WebStandardStreamableHTTPServerTransport does the same
// through a web Request and Response, and cannot be reused across requests when stateless, so
// every call paid for a Request, a Response read back through web streams, and a connect and
// close (whose "Connection closed" error is built with a stack trace): measured at about a third
// of a call's CPU (bench/RESULTS.md, issue 13). The server, its tools, their input validation
// and the protocol stay the SDK's.

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, MessageExtraInfo } from "@modelcontextprotocol/sdk/types.js";

/** JSON-RPC's code for a request cancelled (LSP's, which MCP clients know). */
const REQUEST_CANCELLED = -32800;

export class ExchangeTransport implements Transport {
  onmessage?: Transport["onmessage"];
  onclose?: () => void;
  onerror?: (error: Error) => void;
  /** The request in flight (a pooled server serves one at a time): the client's id, the id the
   * server knows it by, and where its answer goes. */
  private waiting: { id: JSONRPCRequest["id"]; ours: number; answer: (message: JSONRPCMessage) => void } | undefined;
  /** The id of the last request handed to the server. The server knows each request by an id of
   * this transport's, never the client's: a cancelled call's handler may still be running when
   * the server takes its next request, and clients' ids repeat (each client counts from 0), so
   * an answer it sent late under the client's id would be taken for the next request's, another
   * user's perhaps. And the SDK ignores a cancellation of a request whose id is falsy (0 or ""),
   * which would leave such a call running after its client had gone. */
  private lastId = 0;
  /** Fails the request being handed in: set only while the server takes it. */
  private refuse: ((error: Error) => void) | undefined;

  start(): Promise<void> {
    return Promise.resolve();
  }

  /** The server's response to `request`. The protocol answers every request it takes (a
   * handler's failure as a JSON-RPC error); one it will not take it reports as it is handed in
   * (serverFailed), which fails this, so it always settles. */
  request(request: JSONRPCRequest, extra: MessageExtraInfo): Promise<JSONRPCMessage> {
    if (this.waiting) return Promise.reject(new Error("an MCP server got a second request while serving one"));
    return new Promise((answer, reject) => {
      const ours = ++this.lastId;
      this.waiting = { id: request.id, ours, answer };
      this.refuse = (error) => {
        this.waiting = undefined;
        reject(error);
      };
      try {
        this.onmessage?.({ ...request, id: ours }, extra);
      } finally {
        this.refuse = undefined;
      }
    });
  }

  /** The server's `onerror`: an error while it takes a request means it will not answer it. */
  serverFailed(error: Error): void {
    this.refuse?.(error);
  }

  /** The client of `id` is gone: the server is told the request is cancelled (the protocol's
   * notifications/cancelled, which aborts its handler's signal), and the request settles with
   * the protocol's error for it, since the server sends nothing for a request it cancelled.
   * False when it was answered already: nothing was cut short. */
  cancel(id: JSONRPCRequest["id"], reason: string): boolean {
    const waiting = this.waiting;
    if (!waiting || waiting.id !== id) return false;
    this.waiting = undefined;
    this.onmessage?.({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: waiting.ours, reason } });
    waiting.answer({ jsonrpc: "2.0", id, error: { code: REQUEST_CANCELLED, message: `Request cancelled: ${reason}` } });
    return true;
  }

  /** A notification from the client: nothing answers it. */
  notify(notification: JSONRPCNotification, extra: MessageExtraInfo): void {
    this.onmessage?.(notification, extra);
  }

  send(message: JSONRPCMessage): Promise<void> {
    // Only the response goes back: with no stream open to the client, what the server would
    // send besides (progress or log notifications) has nowhere to go, as with the SDK's
    // transport answering in JSON.
    const waiting = this.waiting;
    if (waiting && "id" in message && message.id === waiting.ours && !("method" in message)) {
      this.waiting = undefined;
      waiting.answer({ ...message, id: waiting.id });
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.onclose?.();
    return Promise.resolve();
  }
}
