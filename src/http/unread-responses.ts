// Pulse's HTTP server, and the responses its clients stop reading. A response is written whole
// once its handler returns, and Node keeps what the socket cannot take yet: a client that stops
// reading would hold it in this process for as long as it keeps the socket open (measured: 52 MB
// for one schema, until the client closed). What waits in Node's buffer must shrink within each
// send timeout, or the socket is destroyed; a slow reader that makes progress is not cut. And
// past a bound on all that waits, across sockets, the responses whose clients are not reading
// are dropped: a client reading a byte now and then on each of many sockets makes progress on
// every one, and held 52 MB a socket.
//
// Only a response still being sent once the adapter has written it is watched (most are out by
// then: nothing to pay), by one sweep a second rather than a timer and listeners each. Not the
// socket's own timeout, which Node uses for keep-alive and would carry over to a pipelined
// request. An event stream is written as it goes, under back-pressure: done when it ends.

import { serve, type ServerType } from "@hono/node-server";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import { MAX_BODY_BYTES } from "./body-limit.js";
import { answerClientErrors, receiveOptions, type ReceiveLimits } from "./client-errors.js";

const SWEEP_MS = 1_000;

/** A new response's pace is not known yet: it is not dropped for room before this. */
const PACE_AFTER_MS = 1_000;
/** Slower than this, a client is not reading (a slow mobile link takes about 125 kB a second):
 * only such responses are dropped for room. A client reading faster empties its buffer soon,
 * and several sockets sending one shared answer (a cached schema) each count its whole size. */
const MIN_PACE_BYTES_PER_S = 64 * 1024;

interface Progress {
  /** Bytes waiting in Node's buffer when they last went down. */
  waiting: number;
  since: number;
  /** Bytes waiting when watching began, and when that was: the pace a client reads at. */
  first: number;
  watchedAt: number;
}

export interface UnsentLimits {
  /** HTTP_SEND_TIMEOUT_MS. */
  sendTimeoutMs: number;
  /** HTTP_UNSENT_MAX_BYTES. */
  unsentMaxBytes: number;
  logger: Logger;
}

/** What serving the app is bounded by: unread responses here, requests received in
 * client-errors.ts. */
export const serveLimits = (deps: { config: Config; logger: Logger; metrics: Metrics }, jsonRpcPaths: ReadonlySet<string>): UnsentLimits & ReceiveLimits => ({
  sendTimeoutMs: deps.config.sendTimeoutMs,
  unsentMaxBytes: deps.config.unsentMaxBytes,
  headersTimeoutMs: deps.config.headersTimeoutMs,
  requestTimeoutMs: deps.config.requestTimeoutMs,
  maxBodyBytes: MAX_BODY_BYTES,
  logger: deps.logger,
  metrics: deps.metrics,
  jsonRpcPaths,
});

/** What `response` keeps in this process: in its socket's buffer, or its own while a pipelined
 * response waits its turn. */
const unsent = (response: ServerResponse) => response.writableLength;

export class UnreadResponses {
  private readonly sending = new Map<ServerResponse, Progress>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly limits: UnsentLimits) {}

  /** Watches `response` until it is out (or its socket gone). */
  watch(response: ServerResponse): void {
    const now = performance.now();
    this.sending.set(response, { waiting: Number.POSITIVE_INFINITY, since: now, first: unsent(response), watchedAt: now });
    // Only while there is something to watch: no timer in an idle process.
    this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
    this.keepWithinLimit(now);
  }

  /** Past HTTP_UNSENT_MAX_BYTES in all, drops the responses whose clients are not reading
   * (slower than MIN_PACE_BYTES_PER_S since watched), the slowest first, the largest first among
   * equals: a pile of unread answers goes, the clients that read theirs keep them. Checked as
   * each one is watched. */
  private keepWithinLimit(now: number): void {
    const held = [...this.sending].filter(([response]) => !response.writableFinished && !response.destroyed);
    let total = held.reduce((sum, [response]) => sum + unsent(response), 0);
    if (total <= this.limits.unsentMaxBytes) return;
    const pace = (response: ServerResponse, p: Progress) => ((p.first - unsent(response)) / (now - p.watchedAt)) * 1000;
    const slowestFirst = held
      .filter(([, p]) => now - p.watchedAt >= PACE_AFTER_MS)
      .map(([response, p]) => ({ response, pace: pace(response, p), bytes: unsent(response) }))
      .filter((r) => r.pace < MIN_PACE_BYTES_PER_S)
      .sort((a, b) => a.pace - b.pace || b.bytes - a.bytes);
    for (const { response, bytes } of slowestFirst) {
      if (total <= this.limits.unsentMaxBytes) break;
      this.drop(response, "HTTP_UNSENT_MAX_BYTES reached: a response its client is not reading dropped", bytes);
      total -= bytes;
    }
  }

  private drop(response: ServerResponse, reason: string, bytes: number): void {
    this.limits.logger.warn({ unsent_bytes: bytes, client: response.req.socket.remoteAddress }, reason);
    // The connection's socket: a pipelined response waiting its turn has none of its own yet.
    response.req.socket.destroy();
    this.sending.delete(response);
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
      } else if (now - progress.since >= this.limits.sendTimeoutMs) {
        this.drop(response, "HTTP_SEND_TIMEOUT_MS without progress: the client stopped reading", socket.writableLength);
      }
    }
    if (this.sending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}

export interface ServeOptions extends UnsentLimits, ReceiveLimits {
  port: number;
  hostname: string;
}

/** `fetch` served as @hono/node-server serves it, with unread responses dropped. */
export function serveApp(fetch: (request: Request) => Response | Promise<Response>, options: ServeOptions, onListening: () => void): ServerType {
  const unread = new UnreadResponses(options);
  return serve(
    {
      fetch,
      port: options.port,
      hostname: options.hostname,
      createServer: ((serverOptions: object, listener: (req: IncomingMessage, res: ServerResponse) => Promise<void>) => {
        const server = createServer({ ...serverOptions, ...receiveOptions(options) }, (req, res) => {
          void listener(req, res).then(() => {
            if (!res.writableFinished && !res.destroyed) unread.watch(res);
          });
        });
        answerClientErrors(server, options);
        return server;
      }) as unknown as typeof createServer,
    },
    onListening,
  );
}
