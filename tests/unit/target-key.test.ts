import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";

import { targetKey, type ResolveHost } from "../../src/connectors/target-key.js";
import type { ConnectionTarget } from "../../src/connectors/types.js";

const base: ConnectionTarget = {
  dialect: "postgresql",
  host: "127.0.0.1",
  port: 5432,
  database: "shop",
  username: "alice",
  password: "secret",
  ssl: false,
  connectTimeoutMs: 1000,
};

/** A resolver answering from a table, like DNS would; literals are answered as themselves. */
const dns =
  (names: Record<string, string>): ResolveHost =>
  async (host) =>
    names[host] ?? host;

const keyOf = (t: Partial<ConnectionTarget>, resolve?: ResolveHost) => targetKey({ ...base, ...t }, resolve);

describe("targetKey", () => {
  it.each<[string, Partial<ConnectionTarget>, Record<string, string>]>([
    ["another user name and password", { username: "bob", password: "other", ssl: true }, {}],
    ["a name resolving to the same address", { host: "db.example" }, { "db.example": "127.0.0.1" }],
    ["another loopback address", { host: "127.0.0.2" }, {}],
    ["IPv6 loopback", { host: "::1" }, {}],
    ["IPv6 loopback spelled out", { host: "0:0:0:0:0:0:0:1" }, {}],
    ["an IPv4-mapped loopback", { host: "::ffff:127.0.0.1" }, {}],
    ["the unspecified address", { host: "0.0.0.0" }, {}],
  ])("is the same for %s", async (_name, target, names) => {
    expect(await keyOf(target, dns(names))).toBe(await keyOf({}));
  });

  it.each<[string, Partial<ConnectionTarget>]>([
    ["another port", { port: 5433 }],
    ["another database", { database: "shop2" }],
    ["another dialect", { dialect: "mysql" }],
    ["another host", { host: "10.0.0.9" }],
  ])("differs for %s", async (_name, target) => {
    expect(await keyOf(target)).not.toBe(await keyOf({}));
  });

  const ownAddress = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && !i.internal)?.address;
  it.skipIf(!ownAddress)("counts the machine's own addresses as this host, like loopback", async () => {
    expect(await keyOf({ host: ownAddress! })).toBe(await keyOf({}));
  });

  it("keys a remote address in one spelling, mapped or not", async () => {
    const plain = await keyOf({ host: "10.1.2.3" });
    expect(await keyOf({ host: "::ffff:10.1.2.3" })).toBe(plain);
    expect(await keyOf({ host: "::FFFF:a01:203" })).toBe(plain);
    expect(await keyOf({ host: "2001:db8:0:0::1" })).toBe(await keyOf({ host: "2001:DB8::1" }));
  });

  it("keys what the name resolves to now, not the name", async () => {
    expect(await keyOf({ host: "db.example" }, dns({ "db.example": "10.0.0.1" }))).not.toBe(
      await keyOf({ host: "db.example" }, dns({ "db.example": "10.0.0.2" })),
    );
  });

  it("resolves with the system resolver by default", async () => {
    expect(await keyOf({ host: "localhost" })).toBe(await keyOf({}));
  });

  it("answers a name that does not resolve as a failure to connect, naming the host", async () => {
    await expect(keyOf({ host: "no-such-host.invalid" })).rejects.toMatchObject({
      code: "connection_failed",
      message: 'could not resolve host "no-such-host.invalid"',
    });
  });

  it("keys a SQLite file by its resolved path alone", async () => {
    const sqlite = { dialect: "sqlite" as const, host: "", port: 0, filePath: "/data/sqlite/shop.sqlite" };
    expect(await keyOf({ ...sqlite, database: "shop.sqlite" })).toBe(await keyOf({ ...sqlite, database: "./shop.sqlite" }));
    expect(await keyOf({ ...sqlite, database: "x", filePath: "/data/sqlite/other.sqlite" })).not.toBe(await keyOf({ ...sqlite, database: "x" }));
  });
});
