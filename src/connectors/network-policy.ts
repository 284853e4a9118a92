// Which addresses a customer database may be at. Hosts come from users while Pulse runs inside
// a network: unchecked, a connection could probe any host and port Pulse can reach. Checked on
// the resolved address at every connect (src/connectors/target-gate.ts), not only when saving.

import type { Config } from "../config.js";
import { addressKind, addressSet, inSet, isThisMachine, KIND_NAMES, type AddressKind } from "../net/addresses.js";

export interface NetworkPolicy {
  /** Why connecting to `address` (an IP literal) is refused, or null when it is allowed. */
  refusal(address: string): string | null;
}

/** Refused unless TARGET_ALLOW_NETWORKS allows them: nothing that is a database's address.
 * Private ranges are allowed: that is where customer databases live. */
const REFUSED_KINDS: readonly AddressKind[] = ["loopback", "unspecified", "link_local", "multicast", "reserved", "metadata"];

/**
 * An address in TARGET_ALLOW_NETWORKS is allowed; otherwise one in TARGET_DENY_NETWORKS or of a
 * kind refused by default is refused, and so is, where loopback is, an address of one of this
 * machine's own interfaces (it reaches every service listening here on all interfaces, as
 * loopback would). Outside production both are allowed, so the quick start reaches a database
 * on the same machine.
 */
export function networkPolicy(config: Pick<Config, "env" | "targets">): NetworkPolicy {
  const allow = addressSet(config.targets.allowNetworks);
  const deny = addressSet(config.targets.denyNetworks);
  const refused = new Set(config.env === "production" ? REFUSED_KINDS : REFUSED_KINDS.filter((kind) => kind !== "loopback"));
  return {
    refusal(address) {
      if (inSet(allow, address)) return null;
      if (inSet(deny, address)) return `${address} is in TARGET_DENY_NETWORKS`;
      const kind = addressKind(address);
      if (kind !== "public" && refused.has(kind)) {
        return `${address} is ${KIND_NAMES[kind]}, which connections may not reach; TARGET_ALLOW_NETWORKS allows it`;
      }
      if (refused.has("loopback") && isThisMachine(address)) {
        return `${address} is an address of the machine Pulse runs on, which connections may not reach; TARGET_ALLOW_NETWORKS allows it`;
      }
      return null;
    },
  };
}
