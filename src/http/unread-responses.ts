// Pulse's HTTP server, and the responses its clients stop reading. A response is written whole
// once its handler returns, and Node keeps what the socket cannot take yet: a client that stops
// reading would hold it in this process for as long as it keeps the socket open (measured: 52 MB
// for one schema, until the client closed). What waits in Node's buffer must shrink within each
// send timeout, or the socket is destroyed; a slow reader that makes progress is not cut.
//
// Only a response still being sent once the adapter has written it is watched (most are out by
// then: nothing to pay), by one sweep a second rather than a timer and listeners each. Not the
// socket's own timeout, which Node uses for keep-alive and would carry over to a pipelined
// request. An event stream is written as it goes, under back-pressure: done when it ends.

import { serve, type ServerType } from "@hono/node-server";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

const SWEEP_MS = 1_000;

interface Progress {
  /** Bytes waiting in Node's buffer when they last went down. */
  waiting: number;
  since: number;
}

export class UnreadResponses {
  private readonly sending = new Map<ServerResponse, Progress>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly timeoutMs: number) {}

  /** Watches `response` until it is out (or its socket gone). */
  watch(response: ServerResponse): void {
    this.sending.set(response, { waiting: Number.POSITIVE_INFINITY, since: performance.now() });
    // Only while there is something to watch: no timer in an idle process.
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  private sweep(): void {
    const now = performance.now();
    for (const [response, progress] of this.sending) {
      if (response.writableFinished || response.destroyed) {
        this.sending.delete(response);
        continue;
      }
      // A pipelined response waits for the one before it to be sent: that one is watched.
      const socket = response.socket;
      if (!socket) continue;
      if (socket.writableLength < progress.waiting) {
        progress.waiting = socket.writableLength;
        progress.since = now;
      } else if (now - progress.since >= this.timeoutMs) {
        socket.destroy();
        this.sending.delete(response);
      }
    }
    if (this.sending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}

export interface ServeOptions {
  port: number;
  hostname: string;
  /** HTTP_SEND_TIMEOUT_MS. */
  sendTimeoutMs: number;
}

/** `fetch` served as @hono/node-server serves it, with unread responses dropped. */
export function serveApp(fetch: (request: Request) => Response | Promise<Response>, options: ServeOptions, onListening: () => void): ServerType {
  const unread = new UnreadResponses(options.sendTimeoutMs);
  return serve(
    {
      fetch,
      port: options.port,
      hostname: options.hostname,
      createServer: ((serverOptions: object, listener: (req: IncomingMessage, res: ServerResponse) => Promise<void>) =>
        createServer(serverOptions, (req, res) => {
          void listener(req, res).then(() => {
            if (!res.writableFinished && !res.destroyed) unread.watch(res);
          });
        })) as unknown as typeof createServer,
    },
    onListening,
  );
}
