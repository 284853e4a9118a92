// The byte bound on what one statement may make a database client receive (wire-limit.ts).

import { PassThrough } from "node:stream";
import { describe, expect, it, vi } from "vitest";

import { watchReceivedBytes, wireLimitOf } from "../../src/connectors/drivers/wire-limit.js";

const MiB = 1024 * 1024;

describe("wireLimitOf", () => {
  it.each([
    [1024, 3 * 1024 + MiB],
    [MiB, 4 * MiB],
    [16 * MiB, 49 * MiB],
    // QUERY_MAX_BYTES may be 512 MiB; the bound stays under V8's longest string (2^29 - 24).
    [512 * MiB, 500 * MiB],
  ])("allows %i bytes of result %i bytes on the wire", (maxBytes, limit) => {
    expect(wireLimitOf(maxBytes)).toBe(limit);
    expect(wireLimitOf(maxBytes)).toBeLessThan(2 ** 29 - 24);
  });
});

describe("watchReceivedBytes", () => {
  it("calls back once, before the socket's own reader sees the chunk that crosses the limit", () => {
    const socket = new PassThrough();
    const seen: number[] = [];
    socket.on("data", (chunk: Buffer) => seen.push(chunk.length));
    const exceeded = vi.fn(() => expect(seen).toEqual([60]));
    watchReceivedBytes(socket, 100, exceeded);
    socket.write(Buffer.alloc(60));
    socket.write(Buffer.alloc(60));
    socket.write(Buffer.alloc(60));
    expect(exceeded).toHaveBeenCalledTimes(1);
    expect(exceeded).toHaveBeenCalledWith(120);
  });

  it("stops counting once the statement ends", () => {
    const socket = new PassThrough();
    socket.on("data", () => {});
    const exceeded = vi.fn();
    const stop = watchReceivedBytes(socket, 100, exceeded);
    socket.write(Buffer.alloc(60));
    stop();
    socket.write(Buffer.alloc(60));
    expect(exceeded).not.toHaveBeenCalled();
    expect(socket.listenerCount("data")).toBe(1);
  });
});
