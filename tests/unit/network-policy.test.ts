// The network policy for customer databases: what each kind of address is, and which the
// defaults, TARGET_ALLOW_NETWORKS and TARGET_DENY_NETWORKS let a connection reach.
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { describe, expect, it } from "vitest";

import { networkPolicy } from "../../src/connectors/network-policy.js";
import { addressKind, clientKey, parseNetwork } from "../../src/net/addresses.js";
import { canonicalHost } from "../../src/net/resolve.js";

describe("addressKind", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:0:127.0.0.1", "loopback"],
    ["64:ff9b::7f00:1", "loopback"],
    ["2002:7f00:1::", "loopback"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["169.254.169.254", "link_local"],
    ["fe80::1", "link_local"],
    ["::ffff:a9fe:a9fe", "link_local"],
    ["224.0.0.1", "multicast"],
    ["ff02::1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["10.1.2.3", "private"],
    ["172.31.0.1", "private"],
    ["192.168.0.1", "private"],
    ["100.64.0.1", "private"],
    ["fd00::2", "private"],
    ["64:ff9b:1::a00:1", "private"],
    ["64:ff9b:1:ffff::1", "private"],
    ["8.8.8.8", "public"],
    ["2a00:1450::1", "public"],
    ["64:ff9b::808:808", "public"],
  ])("%s is %s", (address, kind) => {
    expect(addressKind(address)).toBe(kind);
  });
});

describe("clientKey", () => {
  it.each([
    ["203.0.113.7", "203.0.113.7"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["::FFFF:cb00:7107", "203.0.113.7"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::ffff", "2001:db8:1:2::/64"],
    ["2001:0DB8:0001:0002:aaaa::1", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["unknown", "unknown"],
  ])("keys %s as %s", (address, key) => {
    expect(clientKey(address)).toBe(key);
  });

  it("keys every address of one /64 alike, and another /64 apart", () => {
    expect(new Set(["2001:db8:a:b::1", "2001:db8:a:b:ffff:ffff:ffff:ffff", "2001:db8:a:b:1234::9"].map(clientKey)).size).toBe(1);
    expect(clientKey("2001:db8:a:c::1")).not.toBe(clientKey("2001:db8:a:b::1"));
  });

  it("bounds what is not an address", () => {
    expect(clientKey("x".repeat(10_000))).toHaveLength(100);
  });
});

describe("canonicalHost", () => {
  it.each([
    ["LOCALHOST", "localhost"],
    ["127.1", "127.0.0.1"],
    ["0", "0.0.0.0"],
    ["0x7f.0.0.1", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["[::1]", "::1"],
    ["::FFFF:127.0.0.1", "::ffff:7f00:1"],
    ["db.example.com", "db.example.com"],
    ["/var/run/postgresql", null], // a Unix socket directory to pg
    ["db.example.com:5432", null],
    ["user@db.example.com", null],
    ["db\r\nSET x 1", null],
    ["fe80::1%eth0", null],
    ["", null],
  ])("reads %j as %j", (host, expected) => {
    expect(canonicalHost(host)).toBe(expected);
  });
});

const networks = (...items: string[]) => items.map((item) => parseNetwork(item)!);
const policy = (env: "production" | "development", allow: string[] = [], deny: string[] = []) =>
  networkPolicy({ env, targets: { allowNetworks: networks(...allow), denyNetworks: networks(...deny), dnsServers: [], testsPerMinute: 10 } });

describe("networkPolicy", () => {
  it.each([
    // [env, allow, deny, address, refused by]
    ["production", [], [], "127.0.0.1", "TARGET_ALLOW_NETWORKS"],
    ["production", [], [], "::ffff:127.0.0.1", "TARGET_ALLOW_NETWORKS"],
    ["development", [], [], "127.0.0.1", null],
    ["development", [], [], "169.254.169.254", "TARGET_ALLOW_NETWORKS"],
    ["development", [], [], "0.0.0.0", "TARGET_ALLOW_NETWORKS"],
    ["production", [], [], "10.1.2.3", null],
    ["production", [], ["10.0.0.0/8"], "10.1.2.3", "TARGET_DENY_NETWORKS"],
    ["production", [], ["10.0.0.0/8"], "::ffff:10.1.2.3", "TARGET_DENY_NETWORKS"],
    ["production", [], ["10.0.0.0/8"], "64:ff9b::a01:203", "TARGET_DENY_NETWORKS"],
    ["production", ["10.1.0.0/16"], ["10.0.0.0/8"], "10.1.2.3", null], // allowed wins
    ["production", ["127.0.0.1"], [], "127.0.0.1", null],
    ["production", ["169.254.0.0/16"], [], "169.254.169.254", null],
    ["production", ["10.0.0.0/8"], ["0.0.0.0/0", "::/0"], "192.168.1.1", "TARGET_DENY_NETWORKS"], // allow-list only
    ["production", [], ["fd00::/8"], "fd00::5", "TARGET_DENY_NETWORKS"],
    ["production", [], [], "8.8.8.8", null],
    ["production", [], [], "fd00:ec2::254", "TARGET_ALLOW_NETWORKS"], // cloud metadata in private ranges
    ["development", [], [], "100.100.100.200", "TARGET_ALLOW_NETWORKS"],
    ["development", [], [], "192.0.0.192", "TARGET_ALLOW_NETWORKS"],
    ["production", [], [], "100.100.100.201", null],
  ] as const)("%s, allow %j, deny %j: %s refused by %s", (env, allow, deny, address, setting) => {
    const refusal = policy(env, [...allow], [...deny]).refusal(address);
    if (setting === null) expect(refusal).toBeNull();
    else expect(refusal).toContain(setting);
  });

  // An interface's address reaches every service listening here on all interfaces, as loopback
  // would: refused where loopback is.
  const ownAddresses = Object.values(networkInterfaces())
    .flat()
    .filter((info) => info !== undefined && !info.internal)
    .map((info) => info!.address);

  it("refuses this machine's own interface addresses in production, in any spelling, unless allowed", () => {
    const own = ownAddresses.find((address) => isIP(address) === 4);
    expect(own, "this test needs a non-loopback IPv4 interface").toBeDefined();
    expect(policy("production").refusal(own!)).toContain("an address of the machine Pulse runs on");
    expect(policy("production").refusal(`::ffff:${own!}`)).toContain("an address of the machine Pulse runs on");
    expect(policy("production", [own!]).refusal(own!)).toBeNull();
    expect(policy("development").refusal(own!)).toBeNull();
  });
});
