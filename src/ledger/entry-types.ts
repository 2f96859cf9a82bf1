/**
 * Ledger entry types and the per-type payload field allowlist (L7 Secret Handling, OE-INV-009).
 * The single definition lives in the kernel (`src/kernel/ledger-format.ts`), shared with the
 * offline verifier; this module re-exports it under the ledger's names.
 */
export { ENTRY_TYPES, PAYLOAD_ALLOWLIST, isEntryType, disallowedPayloadFields } from '../kernel/index.js';
export type { EntryType } from '../kernel/index.js';
