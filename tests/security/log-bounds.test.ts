// Threat: a server Pulse talks to makes it write far more log than the request that set it off
// costs. What libraries print goes to the log (routeConsoleTo, as src/main.ts installs it):
// mysql2 prints a line for every packet whose sequence id it did not expect, so a user's own
// MySQL server (or anything on its path) made one /query of a thousand rows write a thousand
// error lines (141 KB for an 84-byte statement); the OpenAI SDK prints an event it cannot parse
// whole, so a model server made one /ask write a line of a megabyte. Pulse keeps a few lines of
// each kind a minute, each cut short.

import net, { type AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { routeConsoleTo } from "../../src/logger.js";
import { createHarness, type Harness } from "../support/harness.js";
import { MARIADB } from "../support/services.js";
import { mariaTarget, type TargetDb } from "../support/targets.js";

/** What a statement carrying this gets back has every packet's sequence id off by 100. */
const SHIFT_MARK = "log_bounds_shift";

/** A relay to the local MariaDB that renumbers the packets answering a statement that carries
 * SHIFT_MARK, as a broken or hostile server (or a middlebox) would. */
async function startShiftingRelay(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const server = net.connect(MARIADB.port, MARIADB.host);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    let shifting = false;
    let pending = Buffer.alloc(0);
    client.on("data", (d: Buffer) => {
      shifting = d.includes(SHIFT_MARK);
      server.write(d);
    });
    server.on("data", (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      const packets: Buffer[] = [];
      let at = 0;
      while (pending.length - at >= 4 && pending.length - at >= 4 + pending.readUIntLE(at, 3)) {
        const packet = Buffer.from(pending.subarray(at, at + 4 + pending.readUIntLE(at, 3)));
        if (shifting) packet[3] = (packet[3]! + 100) & 255;
        packets.push(packet);
        at += packet.length;
      }
      pending = pending.subarray(at);
      if (packets.length > 0) client.write(Buffer.concat(packets));
    });
    client.on("error", () => server.destroy());
    server.on("error", () => client.destroy());
    client.on("close", () => server.destroy());
    server.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  return {
    port: (relay.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => relay.close(() => resolve()));
    },
  };
}

/** A model server whose streamed answer is one event of a name the SDK parses itself (thread.*)
 * and data that is not JSON: the SDK prints it whole before failing. */
async function startUnparsableEventServer(dataChars: number): Promise<{ baseUrl: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(`event: thread.run\ndata: ${"Z".repeat(dataChars)}\n\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/* eslint-disable no-console -- the console is routed to the log here as src/main.ts does */
const consoleAsFound = { debug: console.debug, log: console.log, info: console.info, warn: console.warn, error: console.error };

/** The log lines `harness` wrote since `from`. */
const linesSince = (harness: Harness, from: number) => harness.logs.slice(from).join("").split("\n").filter(Boolean);
const bytesOf = (lines: string[]) => lines.reduce((sum, l) => sum + Buffer.byteLength(l) + 1, 0);

let relay: Awaited<ReturnType<typeof startShiftingRelay>>;
let model: Awaited<ReturnType<typeof startUnparsableEventServer>>;
let maria: TargetDb;
let h: Harness;

beforeAll(async () => {
  relay = await startShiftingRelay();
  model = await startUnparsableEventServer(900_000);
  maria = await mariaTarget();
  h = await createHarness({ store: "pglite", env: { OPENAI_BASE_URL: model.baseUrl, OPENAI_API_KEY: "sk-log-bounds", OPENAI_MODEL: "fake-model", ASK_PER_MINUTE: "1000" } });
  routeConsoleTo(h.deps.logger);
}, 60_000);
afterAll(async () => {
  Object.assign(console, consoleAsFound);
  await h?.close();
  await maria?.drop();
  await relay?.close();
  await model?.close();
});
/* eslint-enable no-console */

describe("POST /query on a MySQL server that numbers its packets wrong", () => {
  it("logs a few lines of the driver's warning, not one per packet", async () => {
    const user = await h.newUser();
    const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { ...maria.body, port: relay.port } });
    expect(added.status).toBe(201);
    expect((await h.call("POST", `/databases/connect_db/${added.body.db_connection.id}`, { token: user.token })).status).toBe(200);

    const from = h.logs.length;
    const sql = `SELECT 1 AS ${SHIFT_MARK} FROM seq_1_to_1000`;
    const res = await h.call("POST", "/query", { token: user.token, json: { sql } });
    expect(res.status).toBe(200);
    expect(res.body.data.row_count).toBe(1000);
    const lines = linesSince(h, from);
    const warnings = lines.filter((l) => l.includes("packets out of order"));
    // Seen, but not a thousand times.
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThanOrEqual(10);
    expect(bytesOf(lines)).toBeLessThan(4_096);
  });
});

describe("POST /ask on a model server sending an event the SDK cannot parse", () => {
  it("logs what the SDK printed of it cut short", async () => {
    const user = await h.newConnectedUser();
    const from = h.logs.length;
    const res = await h.call("POST", "/ask", { token: user.token, json: { question: "How many artists?" }, headers: { accept: "text/event-stream" } });
    expect(res.status).toBe(502);
    const lines = linesSince(h, from);
    expect(lines.some((l) => l.includes("Could not parse message into JSON"))).toBe(true);
    expect(Math.max(...lines.map((l) => Buffer.byteLength(l)))).toBeLessThan(4_096);
    expect(bytesOf(lines)).toBeLessThan(16_384);
  });
});
