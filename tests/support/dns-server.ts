// A real DNS server for tests, on UDP at 127.0.0.1: answers A and AAAA questions from a table
// the test changes as it goes, so a name can resolve differently on the second look. Pulse
// asks it through TARGET_DNS_SERVERS.

import dgram from "node:dgram";
import { isIP } from "node:net";

import dnsPacket from "dns-packet";

export interface DnsServer {
  /** For TARGET_DNS_SERVERS: "127.0.0.1:<port>". */
  address: string;
  /** Name (lower case) -> its addresses, IPv4 and IPv6; a name not here does not exist. */
  answers: Map<string, string[]>;
  /** Names (lower case) whose questions get no answer at all, as from a server that never
   * answers; each question is still counted in `asked`. */
  silent: Set<string>;
  /** Questions asked so far, as "A name" / "AAAA name". */
  readonly asked: string[];
  close(): Promise<void>;
}

const NXDOMAIN = 3;

export async function startDnsServer(): Promise<DnsServer> {
  const socket = dgram.createSocket("udp4");
  const answers = new Map<string, string[]>();
  const silent = new Set<string>();
  const asked: string[] = [];
  socket.on("message", (message, from) => {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    if (!question) return;
    asked.push(`${question.type} ${question.name}`);
    if (silent.has(question.name.toLowerCase())) return;
    const addresses = answers.get(question.name.toLowerCase());
    const family = question.type === "A" ? 4 : question.type === "AAAA" ? 6 : 0;
    const response = dnsPacket.encode({
      type: "response",
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | (addresses ? 0 : NXDOMAIN),
      questions: query.questions,
      answers: (addresses ?? [])
        .filter((address) => isIP(address) === family)
        .map((data) => ({ type: question.type, class: "IN", name: question.name, ttl: 0, data })),
    });
    socket.send(response, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    answers,
    silent,
    asked,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
