// What hearing a client's hang-up costs a request, in a tight loop: the AbortController that
// reading @hono/node-server's request signal made (a controller, a listener added and removed)
// against a 'close' listener on Node's response (src/http/standing.ts, onHangUp). The garbage
// the controllers leave is collected inside the loop, so it is counted.
// Run: npx tsx bench/hang-up-cost.ts

import { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";

import { machine, median } from "./lib.js";

const CALLS = 200_000;
const ROUNDS = 7;

function viaSignal(): void {
  const controller = new AbortController();
  const stop = () => undefined;
  controller.signal.addEventListener("abort", stop, { once: true });
  controller.signal.removeEventListener("abort", stop);
}

const response = new ServerResponse(new IncomingMessage(new Socket()));
function viaResponse(): void {
  const closed = () => undefined;
  response.once("close", closed);
  response.off("close", closed);
}

/** CPU per call, µs. */
function cpuPerCall(call: () => void): number {
  const start = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) call();
  const spent = process.cpuUsage(start);
  return (spent.user + spent.system) / CALLS;
}

for (let i = 0; i < 3; i++) [viaSignal, viaResponse].forEach(cpuPerCall); // warm-up
const signal: number[] = [];
const closeListener: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  signal.push(cpuPerCall(viaSignal));
  closeListener.push(cpuPerCall(viaResponse));
}
console.log(`machine: ${machine()}; ${ROUNDS} alternating rounds of ${CALLS.toLocaleString("en")} calls (medians)`);
console.log("| per request | CPU, µs |");
console.log("|---|---:|");
console.log(`| AbortController + listener (the request signal) | ${median(signal).toFixed(2)} |`);
console.log(`| 'close' listener on Node's response | ${median(closeListener).toFixed(2)} |`);
