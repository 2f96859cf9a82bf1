/**
 * What the Execution Layer needs from the Audit System, as an interface it owns: the ledger
 * implementation is injected at composition, so nothing here imports the ledger's code
 * (architecture.md layering; SPEC §1).
 */
import type { DurableWrites, JsonValue } from '../kernel/index.js';

/** A committed ledger entry's position and hash (an envelope's `ledger` claim, a receipt). */
export interface LedgerRef {
  readonly index: number;
  readonly entry_hash: string;
}

/** Entry types the Execution Layer writes. */
export type ExecutionEntryType = 'execution.receipt' | 'denial' | 'envelope.voided';

/** One entry the Execution Layer appends; payload fields follow the ledger's allowlist. */
export interface ExecutionEntry {
  readonly type: ExecutionEntryType;
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly actor: { readonly id: string; readonly role: string };
  readonly payload: Readonly<Record<string, JsonValue>>;
}

/** A committed ledger entry as the Execution Layer reads it back. */
export interface LedgerRecord {
  readonly index: number;
  readonly entry_hash: string;
  readonly type: string;
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly payload: Readonly<Record<string, JsonValue>>;
}

/** The records the executor checks an envelope against before it consumes the nonce. */
export interface EnvelopeLedgerContext {
  /** The committed entry at the envelope's `ledger.index`, or undefined. */
  readonly decision: LedgerRecord | undefined;
  /** `envelope.issued` entries naming the envelope's `jti`, ascending. */
  readonly issued: readonly LedgerRecord[];
  /** `approval.finalized` entries naming the envelope's decision, ascending. */
  readonly finalized: readonly LedgerRecord[];
}

/** The ledger as the Execution Layer sees it (L7 Boundary B, OE-INV-015). */
export interface ExecutionLedger {
  /**
   * Reads, by indexed lookups in one snapshot, the committed entry at `query.index`, the
   * `envelope.issued` entries for `query.jti` and the `approval.finalized` entries for
   * `query.decision_id`. Rejects when the ledger cannot answer (the executor denies
   * `ERR_LEDGER_UNAVAILABLE`).
   */
  readEnvelopeContext(query: {
    readonly index: number;
    readonly jti: string;
    readonly decision_id: string;
  }): Promise<EnvelopeLedgerContext>;
  /**
   * Appends `entry` and resolves once it is durable, with its reference; rejects otherwise. With
   * `writes`, may resolve once written and register its commit there (`durability.ts`).
   */
  append(entry: ExecutionEntry, writes?: DurableWrites): Promise<LedgerRef>;
}
