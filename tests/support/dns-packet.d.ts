// The part of dns-packet (which ships no types) that tests/support/dns-server.ts uses.
declare module "dns-packet" {
  export interface Question {
    type: string;
    name: string;
    class?: string;
  }
  export interface Answer {
    type: string;
    name: string;
    ttl?: number;
    class?: string;
    data: string;
  }
  export interface Packet {
    type?: "query" | "response";
    id?: number;
    flags?: number;
    questions?: Question[];
    answers?: Answer[];
  }
  export function decode(buffer: Buffer): Packet;
  export function encode(packet: Packet): Buffer;
  export const AUTHORITATIVE_ANSWER: number;
  export const RECURSION_DESIRED: number;
  export const RECURSION_AVAILABLE: number;
}
