/**
 * The ledger entry format as the offline verifier knows it: entry types, the per-type payload
 * allowlist, the entry hash and the Merkle leaf (docs/ledger.md, OE-INV-016, OE-INV-009). The
 * definitions are the kernel's (`src/kernel/ledger-format.ts`), the same the ledger writer uses;
 * the verifier imports the kernel only (SPEC §5 "without trusting the system").
 */
import type { EntryBody } from '../kernel/index.js';

export {
  ENTRY_TYPES,
  PAYLOAD_ALLOWLIST,
  GENESIS_PREV_HASH,
  isEntryType,
  disallowedPayloadFields,
  computeEntryHash,
  entryLeafHash as entryLeaf,
} from '../kernel/index.js';
export type { EntryType } from '../kernel/index.js';

/** A ledger entry as it appears in a bundle, after the entry-format check. */
export interface BundleEntry extends EntryBody {
  readonly entry_hash: string;
}
