/**
 * What the Execution Layer needs from the Audit System, as an interface it owns: the ledger
 * implementation is injected at composition, so nothing here imports the ledger's code
 * (architecture.md layering; SPEC §1).
 */
import type { JsonValue } from '../kernel/index.js';

/** A committed ledger entry's position and hash (an envelope's `ledger` claim, a receipt). */
export interface LedgerRef {
  readonly index: number;
  readonly entry_hash: string;
}

/** Entry types the Execution Layer writes. */
export type ExecutionEntryType = 'execution.receipt' | 'denial';

/** One entry the Execution Layer appends; payload fields follow the ledger's allowlist. */
export interface ExecutionEntry {
  readonly type: ExecutionEntryType;
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly actor: { readonly id: string; readonly role: string };
  readonly payload: Readonly<Record<string, JsonValue>>;
}

/** The ledger as the Execution Layer sees it (L7 Boundary B, OE-INV-015). */
export interface ExecutionLedger {
  /**
   * True only when the entry at `ref.index` exists, has exactly `ref.entry_hash`, is durably
   * committed, and is a `decision` entry for `expect.decision_id` in `expect.tenant`. Rejects
   * when the ledger cannot answer (the executor denies `ERR_LEDGER_UNAVAILABLE`).
   */
  hasEntry(
    ref: LedgerRef,
    expect: { readonly type: 'decision'; readonly decision_id: string; readonly tenant: string },
  ): Promise<boolean>;
  /** Appends `entry` and resolves once it is durable, with its reference; rejects otherwise. */
  append(entry: ExecutionEntry): Promise<LedgerRef>;
}
