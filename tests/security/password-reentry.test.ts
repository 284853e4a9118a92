// Threat: whoever holds a token recaptures a saved connection's password by pointing the
// connection at a server of theirs that asks for it in clear. A change of server or user must
// bring the password with it; the stored one is never sent anywhere new.

import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { getConnection, updateConnection } from "../../src/store/connections.js";
import { createHarness, type Harness } from "../support/harness.js";
import { postgresTarget, type TargetDb } from "../support/targets.js";

/** A PostgreSQL server that answers every startup with AuthenticationCleartextPassword and
 * keeps the passwords it is sent. */
async function cleartextPostgres() {
  const captured: string[] = [];
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    let buffered = Buffer.alloc(0);
    let started = false;
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!started) {
        // Startup message: int32 length (itself included), then protocol and parameters.
        if (buffered.length < 4 || buffered.length < buffered.readInt32BE(0)) return;
        buffered = buffered.subarray(buffered.readInt32BE(0));
        started = true;
        const ask = Buffer.alloc(9);
        ask.write("R", 0);
        ask.writeInt32BE(8, 1);
        ask.writeInt32BE(3, 5); // AuthenticationCleartextPassword
        socket.write(ask);
      }
      // PasswordMessage: 'p', int32 length, the password NUL-terminated.
      if (buffered.length >= 5 && buffered[0] === "p".charCodeAt(0) && buffered.length >= 1 + buffered.readInt32BE(1)) {
        captured.push(buffered.subarray(5, buffered.readInt32BE(1)).toString("utf8").replace(/\0$/, ""));
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return {
    port: address.port,
    captured,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let h: Harness;
let target: TargetDb;
let fake: Awaited<ReturnType<typeof cleartextPostgres>>;

beforeAll(async () => {
  h = await createHarness({ env: { CONNECT_TIMEOUT_MS: "2000" } });
  target = await postgresTarget();
  fake = await cleartextPostgres();
});
afterAll(async () => {
  await fake?.close();
  await target?.drop();
  await h?.close();
});

async function savedConnection() {
  const user = await h.newUser();
  const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
  expect(added.status).toBe(201);
  return { user, id: added.body.db_connection.id as number };
}

describe("PUT /databases/{id}", () => {
  it("refuses a new port without the password, and the stored password reaches no one", async () => {
    const { user, id } = await savedConnection();
    const before = fake.connections();
    const res = await h.call("PUT", `/databases/${id}`, { token: user.token, json: { port: fake.port } });
    expect(fake.captured).not.toContain(target.password);
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("invalid_input");
    expect(res.body.errors).toEqual([{ path: "body.db_password", message: expect.stringMatching(/required when changing port/) }]);
    expect(fake.connections()).toBe(before);
    // Nothing was saved: the connection still reaches the real server.
    expect((await h.call("GET", `/databases/${id}`, { token: user.token })).body.port).toBe(target.body.port);
  });

  it.each([
    ["host", { host: "localhost" }],
    ["username", { username: "someone_else" }],
    ["db_type", { db_type: "mysql" }],
  ])("asks for the password again when %s changes", async (field, change) => {
    const { user, id } = await savedConnection();
    const res = await h.call("PUT", `/databases/${id}`, { token: user.token, json: change });
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(new RegExp(`body\\.db_password: required when changing .*${field}`));
  });

  it("asks for the password again when TLS is turned off, since it would then cross the network in clear", async () => {
    const { user, id } = await savedConnection();
    // The local server has no TLS to prove a saved `ssl: true` with, so the row says it directly.
    await updateConnection(h.deps.store.db, user.id, id, { ssl: true }, (await getConnection(h.deps.store.db, user.id, id))!.updatedAt);
    const res = await h.call("PUT", `/databases/${id}`, { token: user.token, json: { ssl: false } });
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(/body\.db_password: required when changing ssl/);
  });

  it("sends only the password given in the same request to the new server", async () => {
    const { user, id } = await savedConnection();
    const res = await h.call("PUT", `/databases/${id}`, { token: user.token, json: { port: fake.port, db_password: "typed-again" } });
    expect(res.status).toBe(400); // the fake server is no database
    expect(fake.captured).toContain("typed-again");
    expect(fake.captured).not.toContain(target.password);
  });

  it("needs no password for a rename or another database on the same server", async () => {
    const { user, id } = await savedConnection();
    expect((await h.call("PUT", `/databases/${id}`, { token: user.token, json: { name: "Renamed" } })).status).toBe(200);
    const same = await h.call("PUT", `/databases/${id}`, {
      token: user.token,
      json: { host: target.body.host, port: target.body.port, database_name: target.body.database_name, ssl: false },
    });
    expect(same.status).toBe(200);
  });
});

describe("PUT /api/v1/instances/{id}", () => {
  it("refuses a new port without the password, naming seed 000's password field", async () => {
    const { user, id } = await savedConnection();
    const res = await h.call("PUT", `/api/v1/instances/${id}`, { token: user.token, json: { name: "Updated DB Name", port: fake.port } });
    expect(fake.captured).not.toContain(target.password);
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path: "body.password", message: expect.stringMatching(/required when changing port/) }]);
  });
});
