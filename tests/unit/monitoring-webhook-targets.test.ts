// Which webhook URLs notifications may go to: public addresses only, every address a name
// resolves to, unless private targets are allowed (WEBHOOK_ALLOW_PRIVATE).
import { describe, expect, it } from "vitest";

import { NonPublicTargetError, nonPublicLiteral, webhookLookup, webhookResolver, webhookTargetProblem } from "../../src/monitoring/webhook-targets.js";
import { isPublicAddress } from "../../src/net/addresses.js";
import type { Resolver } from "../../src/net/resolve.js";

describe("isPublicAddress", () => {
  it.each([
    // IPv4: the edges of every refused range, and their public neighbours.
    ["8.8.8.8", true],
    ["1.1.1.1", true],
    ["0.0.0.0", false],
    ["0.255.255.255", false],
    ["9.255.255.255", true],
    ["10.0.0.0", false],
    ["10.255.255.255", false],
    ["11.0.0.0", true],
    ["100.63.255.255", true],
    ["100.64.0.1", false],
    ["100.127.255.255", false],
    ["100.128.0.0", true],
    ["126.255.255.255", true],
    ["127.0.0.1", false],
    ["127.255.255.254", false],
    ["169.254.169.254", false], // cloud metadata
    ["169.255.0.1", true],
    ["172.15.255.255", true],
    ["172.16.0.1", false],
    ["172.31.255.255", false],
    ["172.32.0.0", true],
    ["192.0.0.8", false],
    ["192.168.0.1", false],
    ["192.169.0.1", true],
    ["198.18.0.1", false],
    ["198.20.0.1", true],
    ["223.255.255.255", true],
    ["224.0.0.1", false],
    ["239.255.255.250", false],
    ["240.0.0.1", false],
    ["255.255.255.255", false],
    // IPv6.
    ["2001:4860:4860::8888", true],
    ["2606:4700:4700::1111", true],
    ["::", false],
    ["::1", false],
    ["fc00::1", false],
    ["fd12:3456:789a::1", false],
    ["fe80::1", false],
    ["febf::1", false],
    ["fec0::1", false],
    ["ff02::1", false],
    // IPv4 carried in IPv6: judged by the IPv4 address.
    ["::ffff:127.0.0.1", false],
    ["::ffff:7f00:1", false],
    ["::ffff:169.254.169.254", false],
    ["::ffff:8.8.8.8", true],
    ["64:ff9b::10.0.0.1", false],
    ["64:ff9b::808:808", true],
    ["::ffff:0:127.0.0.1", false], // IPv4-translated (::ffff:0:0:0/96)
    ["::ffff:0:a9fe:a9fe", false],
    ["::ffff:0:808:808", true],
    ["64:ff9b::7f00:1", false], // NAT64 of 127.0.0.1
    ["64:ff9b:1::10.0.0.1", false], // local-use NAT64 (64:ff9b:1::/48)
    ["64:ff9b:1:abcd::1", false],
    ["::127.0.0.1", false], // IPv4-compatible
    ["2002:7f00:1::1", false], // 6to4 of 127.0.0.1
    ["2002:808:808::1", true],
    ["2002:7f00:1::1", false], // 6to4 of 127.0.0.1
    ["2002:c0a8:101::1", false], // 6to4 of 192.168.1.1
    ["2002:808:808::1", true],
    ["::127.0.0.1", false],
    // IETF special-purpose IPv6 and IPv4 ranges, and their public neighbours.
    ["2001:0:4136:e378:8000:63bf:80ff:fffe", false], // Teredo, carrying 127.0.0.1 obfuscated
    ["2001:2::1", false], // benchmarking
    ["2001:10::1", false], // ORCHID
    ["2001:1ff:ffff::1", false],
    ["2001:200::1", true],
    ["100::1", false], // discard-only
    ["100:0:0:1::1", true],
    ["3fff::1", false], // documentation (RFC 9637)
    ["3fff:fff:ffff::1", false],
    ["3fff:1000::1", true],
    ["192.88.99.1", false], // 6to4 relay anycast (deprecated)
    ["192.88.100.1", true],
    // Not addresses at all.
    ["localhost", false],
    ["", false],
    ["1.2.3", false],
  ])("%s is public: %s", (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });
});

/** Answers from a fixed table, as DNS would. */
const resolver =
  (table: Record<string, string[]>): Resolver =>
  async (hostname) => {
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address }));
  };

const dns = resolver({
  "hooks.slack.com": ["52.89.214.238", "2600:1f14::1"],
  "intranet.example": ["10.1.2.3"],
  "metadata.example": ["169.254.169.254"],
  "split.example": ["93.184.216.34", "192.168.0.10"],
  "v6-local.example": ["fd00::5"],
  "empty.example": [],
});

describe("webhookTargetProblem", () => {
  it.each<[string, string | null]>([
    ["https://hooks.slack.com/services/T000/B000/XXXX", null],
    ["http://hooks.slack.com:8080/path?q=1", null],
    ["https://93.184.216.34/hook", null],
    ["https://[2606:4700:4700::1111]/hook", null],
    ["https://intranet.example/hook", "not_public"],
    ["https://metadata.example/latest/meta-data/", "not_public"],
    ["https://split.example/hook", "not_public"], // one private answer is enough
    ["https://v6-local.example/hook", "not_public"],
    ["http://127.0.0.1:3000/hook", "not_public"],
    ["http://[::1]/hook", "not_public"],
    ["http://[::ffff:a9fe:a9fe]/hook", "not_public"],
    ["http://2130706433/hook", "not_public"], // 127.0.0.1 as a number
    ["http://0x7f.0.0.1/hook", "not_public"],
    ["http://017700000001/hook", "not_public"], // octal
    ["http://10.1/hook", "not_public"], // 10.0.0.1
    ["https://nowhere.example/hook", "unresolved"],
    ["https://empty.example/hook", "unresolved"],
    ["ftp://hooks.slack.com/x", "scheme"],
    ["file:///etc/passwd", "scheme"],
    ["gopher://127.0.0.1:6379/_FLUSHALL", "scheme"],
    ["javascript:alert(1)", "scheme"],
    ["not a url", "scheme"],
    ["http://1.1.1.1:0/hook", "port"],
    ["https://hooks.slack.com:0/services/x", "port"],
  ])("%s: %s", async (url, problem) => {
    expect(await webhookTargetProblem(url, { allowPrivate: false, resolve: dns })).toBe(problem);
  });

  it("allows private targets when told to, never other schemes", async () => {
    const options = { allowPrivate: true, resolve: dns };
    expect(await webhookTargetProblem("http://127.0.0.1:3000/hook", options)).toBeNull();
    expect(await webhookTargetProblem("https://intranet.example/hook", options)).toBeNull();
    expect(await webhookTargetProblem("https://nowhere.example/hook", options)).toBeNull(); // not looked up
    expect(await webhookTargetProblem("ftp://127.0.0.1/x", options)).toBe("scheme");
    expect(await webhookTargetProblem("http://127.0.0.1:0/x", options)).toBe("port");
  });

  it("resolves with the webhooks' resolver a name the DNS does not know as the system would (localhost is loopback)", async () => {
    expect(await webhookTargetProblem("http://localhost:8000/hook", { allowPrivate: false, resolve: webhookResolver(5000) })).toBe("not_public");
  });
});

describe("webhookLookup", () => {
  const lookUp = (hostname: string, allowPrivate: boolean) =>
    new Promise<{ err: Error | null; address: string; family: number }>((resolve) =>
      webhookLookup(dns, allowPrivate)(hostname, {}, (err, address, family) => resolve({ err, address: address as string, family: family ?? 0 })),
    );

  it("answers from the resolver it is given (never the system's), refusing private addresses unless allowed", async () => {
    expect(await lookUp("hooks.slack.com", false)).toEqual({ err: null, address: "52.89.214.238", family: 4 });
    expect((await lookUp("intranet.example", false)).err).toBeInstanceOf(NonPublicTargetError);
    expect((await lookUp("split.example", false)).err).toBeInstanceOf(NonPublicTargetError);
    // WEBHOOK_ALLOW_PRIVATE: the same resolver, no refusal.
    expect(await lookUp("intranet.example", true)).toEqual({ err: null, address: "10.1.2.3", family: 4 });
    expect((await lookUp("nowhere.example", true)).err).toMatchObject({ code: "ENOTFOUND" });
  });
});

describe("nonPublicLiteral", () => {
  it.each([
    ["http://127.0.0.1/x", true],
    ["http://[fe80::1]/x", true],
    ["http://8.8.8.8/x", false],
    ["http://localhost/x", false], // a name: the connection's lookup checks it
  ])("%s: %s", (url, expected) => {
    expect(nonPublicLiteral(new URL(url))).toBe(expected);
  });
});
