// Names users give (a customer database's host, a webhook's) whose DNS servers never answer
// (red-team pass): looked up with the system's resolver (getaddrinfo), each held one of libuv's
// four threads for as long as the system's resolver waits (30 s), and a handful of them sent at
// once held every other lookup and file read of the process. Pulse now asks DNS servers from the
// event loop (c-ares) within a bound, and falls back to the system's resolver only for a name
// the DNS answered it does not know (hosts file: localhost), one such lookup at a time.

import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { readFile } from "node:fs/promises";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { dnsResolver } from "../../src/net/resolve.js";
import { startDnsServer, type DnsServer } from "../support/dns-server.js";

let silent: dgram.Socket;
let silentAddress: string;
let nxdomain: DnsServer;

beforeAll(async () => {
  silent = dgram.createSocket("udp4");
  silent.on("message", () => undefined); // never answers
  await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
  silentAddress = `127.0.0.1:${silent.address().port}`;
  nxdomain = await startDnsServer();
});
afterAll(async () => {
  silent?.close();
  await nxdomain?.close();
});

describe("a resolver of names users give", () => {
  it("gives up on names whose DNS never answers within its bound, holding no thread the rest of the process needs", async () => {
    const resolve = dnsResolver(200, [silentAddress]);
    const started = Date.now();
    const names = Array.from({ length: 12 }, (_, i) => resolve(`n${i}.never-answers.test`).then(() => "resolved", (err: NodeJS.ErrnoException) => err.code));
    // Meanwhile the system's own lookups and file reads go on at once.
    const during = Date.now();
    await Promise.all([lookup("localhost"), readFile(new URL(import.meta.url)), lookup("localhost"), readFile(new URL(import.meta.url))]);
    expect(Date.now() - during).toBeLessThan(1_000);
    expect(await Promise.all(names)).toEqual(Array(12).fill("ETIMEOUT"));
    // Two tries, the second's wait doubled: about 1 s (slack for a busy machine).
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("looks a name the DNS does not know up as the system would (hosts file), unless it was given its servers", async () => {
    const server = nxdomain.address;
    // Given servers (TARGET_DNS_SERVERS): theirs is the only answer.
    await expect(dnsResolver(500, [server])("localhost")).rejects.toMatchObject({ code: "ENOTFOUND" });
    // The system's servers (here a stand-in that knows no name): the hosts file's answer.
    const { setServers, getServers } = await import("node:dns");
    const saved = getServers();
    setServers([server]);
    try {
      const addresses = (await dnsResolver(500)("localhost")).map((a) => a.address);
      expect(addresses.some((a) => a === "127.0.0.1" || a === "::1")).toBe(true);
    } finally {
      setServers(saved);
    }
  });

  it("answers what the DNS has, IPv4 first", async () => {
    nxdomain.answers.set("db.example.test", ["10.1.2.3", "fd00::7"]);
    expect(await dnsResolver(500, [nxdomain.address])("db.example.test")).toEqual([{ address: "10.1.2.3" }, { address: "fd00::7" }]);
  });
});
