// A local webhook endpoint on 127.0.0.1 that records every POST it receives, and can be told
// to answer errors or hang, so tests see exactly what Pulse sent and when.

import { createServer, type IncomingMessage, type Server } from "node:http";

/** Environment for a harness whose channels post to this receiver: Pulse refuses loopback
 * targets unless told otherwise. */
export const LOCAL_RECEIVER_ENV = { WEBHOOK_ALLOW_PRIVATE: "true" } as const;

export interface ReceivedHook {
  path: string;
  headers: IncomingMessage["headers"];
  body: any;
  at: number;
}

export interface WebhookReceiver {
  /** Base URL, e.g. http://127.0.0.1:41234 ; any path under it is accepted. */
  url: string;
  received: ReceivedHook[];
  /** Received under one path (each test uses its own path, e.g. a unique token). */
  at(path: string): ReceivedHook[];
  /** Answer the next `count` requests with `status` (default: 200 for all). */
  failNext(count: number, status?: number): void;
  /** Do not answer the next `count` requests at all (the sender's timeout must end them). */
  hangNext(count: number): void;
  /** Record the next `count` requests as they arrive, but answer them `ms` later. */
  delayNext(count: number, ms: number): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedHook[] = [];
  let failures: { count: number; status: number } = { count: 0, status: 500 };
  let hangs = 0;
  let delays = { count: 0, ms: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (hangs > 0) {
        hangs -= 1;
        return; // never answered; closed with the server
      }
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text
      }
      if (failures.count > 0) {
        failures.count -= 1;
        res.writeHead(failures.status).end("failing on purpose");
        return;
      }
      received.push({ path: req.url ?? "/", headers: req.headers, body, at: Date.now() });
      const answer = () => res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      if (delays.count > 0) {
        delays.count -= 1;
        setTimeout(answer, delays.ms);
      } else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    at: (path) => received.filter((r) => r.path === path),
    failNext(count, status = 500) {
      failures = { count, status };
    },
    hangNext(count) {
      hangs = count;
    },
    delayNext(count, ms) {
      delays = { count, ms };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
