// Names users give (a customer database's host, a webhook's) whose DNS servers never answer
// (red-team pass): looked up with the system's resolver (getaddrinfo), each held one of libuv's
// four threads for as long as the system's resolver waits (30 s), and a handful of them sent at
// once held every other lookup and file read of the process. Pulse now asks DNS servers from the
// event loop (c-ares) within a bound, and falls back to the system's resolver only for a name
// the DNS answered it does not know (hosts file: localhost), one such lookup at a time.

import dgram from "node:dgram";
import dnsPromises, { lookup } from "node:dns/promises";
import { readFile } from "node:fs/promises";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { dnsResolver, LookupsInTurn } from "../../src/net/resolve.js";
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

  it("looks a name the DNS has no address for up as the system would (hosts file), unless it was given its servers", async () => {
    // Given servers (TARGET_DNS_SERVERS): theirs is the only answer.
    await expect(dnsResolver(500, [nxdomain.address])("localhost")).rejects.toMatchObject({ code: "ENOTFOUND" });
    // The system's servers (here stand-ins): one that knows no name, one where none listens.
    const saved = dnsPromises.getServers();
    const nobody = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => nobody.bind(0, "127.0.0.1", resolve));
    const nobodyAddress = `127.0.0.1:${nobody.address().port}`;
    nobody.close();
    try {
      for (const server of [nxdomain.address, nobodyAddress]) {
        dnsPromises.setServers([server]);
        const asked = nxdomain.asked.length;
        const addresses = (await dnsResolver(500)("localhost")).map((a) => a.address);
        expect(addresses.some((a) => a === "127.0.0.1" || a === "::1"), server).toBe(true);
        if (server === nxdomain.address) expect(nxdomain.asked.length).toBeGreaterThan(asked);
      }
    } finally {
      dnsPromises.setServers(saved);
    }
  });

  it("answers what the DNS has, IPv4 first", async () => {
    nxdomain.answers.set("db.example.test", ["10.1.2.3", "fd00::7"]);
    expect(await dnsResolver(500, [nxdomain.address])("db.example.test")).toEqual([{ address: "10.1.2.3" }, { address: "fd00::7" }]);
  });

  it("looks names up the system's way one at a time, skipping those whose callers gave up, and refuses past a bound", async () => {
    const started: string[] = [];
    const slow = (hostname: string) => {
      started.push(hostname);
      const ms = hostname.startsWith("slow") ? 400 : 0;
      return new Promise<{ address: string }[]>((resolve) => setTimeout(() => resolve([{ address: "192.0.2.1" }]), ms));
    };
    const inTurn = new LookupsInTurn(slow, 4);
    const outcome = (p: Promise<unknown>) => p.then(() => "found", () => "gave up");
    const first = outcome(inTurn.run("slow-1", 1_000));
    const second = outcome(inTurn.run("slow-2", 100)); // gives up while the first runs
    const third = outcome(inTurn.run("quick", 1_000));
    const fourth = outcome(inTurn.run("slow-3", 1_000));
    expect(await outcome(inTurn.run("one-too-many", 1_000))).toBe("gave up");
    expect(await Promise.all([first, second, third, fourth])).toEqual(["found", "gave up", "found", "found"]);
    expect(started).toEqual(["slow-1", "quick", "slow-3"]);
  });
});
