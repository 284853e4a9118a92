// A TCP relay between Pulse and a real database server, so a test can break the network
// without touching the shared server: cut() drops every connection open now, freeze() leaves
// them open but silent (nothing forwarded either way, nothing closed); freezeOn() does that to
// a connection when its client sends a given text; linger() keeps open what the server or the
// client closes, as a server that never says goodbye. Connections opened
// afterwards are relayed normally, as after a network fault that healed.

import { readFileSync } from "node:fs";
import net from "node:net";

export interface TcpRelay {
  /** The relay's own port (on 127.0.0.1 unless told otherwise). */
  port: number;
  /** Connections relayed right now. */
  readonly open: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Bytes relayed from the server so far. The relay reads only as fast as the client does
   * (plus socket buffers), so this is about what the client took in. */
  readonly bytesFromServer: number;
  /** Drops every connection relayed now, both sides at once, as a network cut does. */
  cut(): void;
  /** Stops forwarding on every connection relayed now and keeps them open: a silent peer. */
  freeze(): void;
  /** While true, connections opened are dropped at once: a server that is down. */
  refuse(down: boolean): void;
  /** While true, connections opened are accepted and frozen from the start: a network path
   * that swallows everything (freeze() only silences those open already). */
  blackhole(on: boolean): void;
  /** From now on, a connection whose client sends `text` goes silent at that moment, as
   * freeze() does to it alone (`null` stops watching). */
  freezeOn(text: string | null): void;
  /** As freezeOn, but what carries `text` still reaches the server: its answer is what is lost
   * (a commit whose reply never arrives). */
  freezeAfter(text: string | null): void;
  /** Counts, from now on, how often what clients send carries `text` (a statement's text: the
   * message that sends it carries it whole); the function returned reads the count so far. */
  countSent(text: string): () => number;
  /** Holds each answer of the server this long before passing it on (0: none), in order: a
   * slow link, on which every round trip costs `ms`. */
  delay(ms: number): void;
  /** While true, the relay closes nothing it is not made to: a client's goodbye (its end of
   * the connection) and the server's closing are met by silence, the client's side kept open,
   * as a hostile or broken server that never closes its side. */
  linger(on: boolean): void;
  /** Connections to the relay whose client, in this process, still holds its socket open: one
   * the client closed is gone or left to the kernel (no inode). Reads /proc (Linux). */
  readonly clientsHoldingOpen: number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  server: net.Socket;
  frozen: boolean;
}

/** `listen`: where the relay listens (default 127.0.0.1, any free port). */
export async function startTcpRelay(target: { host: string; port: number }, listen: { host?: string; port?: number } = {}): Promise<TcpRelay> {
  const pairs = new Set<Pair>();
  let bytesFromServer = 0;
  let refusing = false;
  let blackholing = false;
  let accepted = 0;
  let freezeText: string | null = null;
  let freezeAfterText: string | null = null;
  let delayMs = 0;
  let lingering = false;
  const counters: { text: Buffer; count: number }[] = [];

  // Half-open allowed, so that a lingering relay can leave a client's goodbye unanswered.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair: Pair = { client, server: upstream, frozen: blackholing };
    pairs.add(pair);
    // Frozen: bytes are read and dropped, so neither peer sees back-pressure or a close.
    const forward = (from: net.Socket, to: net.Socket, count: (bytes: number) => void, delay = () => 0) =>
      from.on("data", (chunk: Buffer) => {
        if (pair.frozen) return;
        count(chunk.length);
        const ms = delay();
        // Timers of one delay fire in order, so the stream's order holds.
        if (ms > 0) return void setTimeout(() => pair.frozen || to.destroyed || to.write(chunk), ms);
        if (!to.write(chunk)) {
          from.pause();
          to.once("drain", () => from.resume());
        }
      });
    client.prependListener("data", (chunk: Buffer) => {
      if (pair.frozen) return;
      for (const counter of counters) {
        for (let at = chunk.indexOf(counter.text); at !== -1; at = chunk.indexOf(counter.text, at + 1)) counter.count++;
      }
      if (freezeText !== null && chunk.includes(freezeText)) pair.frozen = true;
      else if (freezeAfterText !== null && chunk.includes(freezeAfterText)) {
        upstream.write(chunk);
        pair.frozen = true;
      }
    });
    forward(client, upstream, () => {});
    forward(upstream, client, (bytes) => (bytesFromServer += bytes), () => delayMs);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("end", () => (lingering ? (pair.frozen = true) : client.end()));
    client.on("error", drop);
    client.on("close", () => pair.frozen || drop());
    // The server gone, a lingering relay keeps the client's side open, silent.
    const serverGone = () => (lingering ? (pair.frozen = true) : drop());
    upstream.on("error", serverGone);
    upstream.on("close", () => pair.frozen || serverGone());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port ?? 0, listen.host ?? "127.0.0.1", resolve);
  });
  const port = (server.address() as net.AddressInfo).port;

  const cut = () => {
    for (const pair of [...pairs]) {
      pairs.delete(pair);
      pair.client.destroy();
      pair.server.destroy();
    }
  };
  return {
    port,
    get open() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    get bytesFromServer() {
      return bytesFromServer;
    },
    cut,
    freeze() {
      for (const pair of pairs) pair.frozen = true;
    },
    freezeOn(text) {
      freezeText = text;
    },
    freezeAfter(text) {
      freezeAfterText = text;
    },
    countSent(text) {
      const counter = { text: Buffer.from(text), count: 0 };
      counters.push(counter);
      return () => counter.count;
    },
    delay(ms) {
      delayMs = ms;
    },
    linger(on) {
      lingering = on;
    },
    get clientsHoldingOpen() {
      const ours = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
      // Fields: sl, local address, remote address, state, queues, timers, retransmits, uid, timeout, inode.
      return readFileSync("/proc/self/net/tcp", "utf8")
        .split("\n")
        .slice(1)
        .map((line) => line.trim().split(/\s+/))
        .filter((f) => f[2]?.endsWith(ours) && f[9] !== undefined && f[9] !== "0").length;
    },
    refuse(down) {
      refusing = down;
    },
    blackhole(on) {
      blackholing = on;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
