// Password hashing with bcrypt (bcryptjs: pure JS, no native build).

import bcrypt from "bcryptjs";

/** bcrypt reads at most 72 bytes; longer passwords would be silently truncated. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 8;

export const hashPassword = (password: string, rounds: number) => bcrypt.hash(password, rounds);

// Compared against when the account does not exist, so an unknown email costs the same time
// as a wrong password and response times do not reveal which emails are registered.
const DUMMY_HASH = bcrypt.hashSync("pulse-dummy-password", 10);

export async function verifyPassword(password: string, hash: string | null): Promise<boolean> {
  const ok = await bcrypt.compare(password, hash ?? DUMMY_HASH);
  return ok && hash !== null;
}
