// Names one running instance of Pulse, in scheduler leases and the live-instance count: the
// host and pid say which process it is in logs and in the store, and random bytes keep two
// instances apart when one process holds both (tests, or a restart reusing a pid).

import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

export const newInstanceId = (): string => `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
