// Sealing of stored database passwords: AES-256-GCM bound to the owner.

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";

import { openSecret, sealSecret } from "../../src/auth/secrets.js";

const key = randomBytes(32);

describe("sealSecret / openSecret", () => {
  it.each(["", "p@ss", "ünïcødé 密码", "x".repeat(1000)])("round-trips %j", (plain) => {
    expect(openSecret(sealSecret(plain, key, "ctx"), key, "ctx")).toBe(plain);
  });

  it("never contains the clear text and differs on every seal", () => {
    const a = sealSecret("hunter2-secret", key, "ctx");
    const b = sealSecret("hunter2-secret", key, "ctx");
    expect(a).not.toBe(b);
    expect(a).not.toContain("hunter2");
    expect(Buffer.from(a.slice(3), "base64").toString("latin1")).not.toContain("hunter2");
  });

  it("refuses another owner's context, another key, and any tampering", () => {
    const sealed = sealSecret("secret", key, "db_connection:owner:1");
    expect(() => openSecret(sealed, key, "db_connection:owner:2")).toThrow();
    expect(() => openSecret(sealed, randomBytes(32), "db_connection:owner:1")).toThrow();
    const raw = Buffer.from(sealed.slice(3), "base64");
    raw[raw.length - 1]! ^= 1;
    expect(() => openSecret(`v1:${raw.toString("base64")}`, key, "db_connection:owner:1")).toThrow();
    expect(() => openSecret("v0:abc", key, "db_connection:owner:1")).toThrow(/format/);
  });
});
