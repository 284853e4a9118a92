// An answer sent as server-sent events while it is being made (POST /ask), in order and within
// what an unread response may hold. A client that stopped reading kept every event in this
// process, and the question its turn, for as long as it kept the socket open (a red-team pass
// held 41 MB with one stream). Now the agent waits, before each model or tool call, while
// more than a bound waits for the client (caughtUp); and a client that takes nothing for
// HTTP_SEND_TIMEOUT_MS while events wait for it is let go (its socket closed and the stream
// aborted: the agent stops, the turn is given back). A slow reader that keeps taking bytes is
// not cut, as for any response (unread-responses.ts).

import type { HttpBindings } from "@hono/node-server";
import type { Context } from "hono";
import type { SSEStreamingApi } from "hono/streaming";

import { errorBody } from "./errors.js";

/** How often a stream's progress is looked at: the send timeout is met within this. */
const CHECK_MS = 1_000;

export interface EventStreamLimits {
  /** HTTP_SEND_TIMEOUT_MS. */
  sendTimeoutMs: number;
  /** What may wait for the client (characters of JSON) before the agent waits for it. */
  maxBehindChars: number;
}

export interface PacedEvents {
  /** Queues one event; resolves once it is written, or dropped with a client let go. */
  send(event: string, data: unknown): Promise<void>;
  /** Resolves once no more than `maxBehindChars` wait for the client, or it is let go. */
  caughtUp(): Promise<void>;
  /** Stops watching the client (the stream has ended). */
  close(): void;
}

/** Sends `stream`'s events in order; `onLetGo` is told why a client was let go. */
export function pacedEvents(c: Context, stream: SSEStreamingApi, limits: EventStreamLimits, onLetGo: (reason: string) => void): PacedEvents {
  // Served by @hono/node-server: its socket's buffer tells a client taking bytes of a large
  // event from one taking none. (Under app.request() there is none: events written count.)
  const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
  let written = Promise.resolve();
  /** Characters queued and not yet taken by the stream; and all it has taken. */
  let behind = 0;
  let taken = 0;
  let letGo = false;
  let lastBuffered = Number.POSITIVE_INFINITY;
  let lastTaken = 0;
  let progressAt = performance.now();
  /** Told once the client has caught up (or been let go). */
  let waiting: (() => void)[] = [];
  const tellCaughtUp = () => {
    if (waiting.length === 0 || (behind > limits.maxBehindChars && !letGo)) return;
    for (const resolve of waiting) resolve();
    waiting = [];
  };

  const giveUp = (reason: string) => {
    if (letGo) return;
    letGo = true;
    clearInterval(watch);
    tellCaughtUp();
    onLetGo(reason);
    // Frees what waits in the socket's buffer; aborting ends the writes waiting behind it.
    outgoing?.destroy();
    stream.abort();
  };

  // However the stream ends (the client gone, or let go here), an agent waiting for it goes on,
  // to see that it was aborted.
  stream.onAbort(() => {
    letGo = true;
    clearInterval(watch);
    tellCaughtUp();
  });

  const watch = setInterval(() => {
    const now = performance.now();
    const buffered = outgoing?.writableLength ?? 0;
    // Nothing waiting for the client (the agent thinking) is not a client that stopped reading.
    if ((behind === 0 && buffered === 0) || buffered < lastBuffered || taken > lastTaken) progressAt = now;
    lastBuffered = buffered;
    lastTaken = taken;
    if (now - progressAt >= limits.sendTimeoutMs) giveUp("HTTP_SEND_TIMEOUT_MS without progress: the client stopped reading the event stream");
  }, CHECK_MS);
  watch.unref();

  return {
    send(event, data) {
      if (letGo) return written;
      const [name, text] = encoded(event, data);
      behind += text.length;
      written = written.then(async () => {
        if (!letGo) await stream.writeSSE({ event: name, data: text });
        behind -= text.length;
        taken += text.length;
        tellCaughtUp();
      });
      return written;
    },
    caughtUp() {
      if (letGo || behind <= limits.maxBehindChars) return Promise.resolve();
      return new Promise((resolve) => waiting.push(resolve));
    },
    close() {
      clearInterval(watch);
    },
  };
}

/** An event's data as JSON; one that has none (a cycle, nesting past the call stack) is sent as
 * an `error` event saying so, rather than failing the stream with its turn still held. */
function encoded(event: string, data: unknown): [event: string, data: string] {
  try {
    return [event, JSON.stringify(data)];
  } catch {
    return ["error", JSON.stringify({ ...errorBody("internal_error", `A ${event} event could not be written as JSON`), status: 500 })];
  }
}
