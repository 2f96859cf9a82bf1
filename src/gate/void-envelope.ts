/**
 * Voiding the envelope of a call that failed after issuance (SPEC §3 "an envelope is never a
 * bearer token at rest", docs/envelope.md "Voiding"). The Gate asks the Execution Layer through
 * its port, within a deadline, BEFORE it answers; the answer then says whether the envelope is
 * out of use for ever. The Gate can only take an envelope out of use: it never consumes or runs.
 */
import type { DenialCode } from '../kernel/index.js';
import { withCancellableDeadline } from './deadline.js';
import type { ExecutionCall, GateExecutor } from './types.js';

/** What the Gate's deny answer tells about the envelope. */
export interface VoidReport {
  /** True only when the Execution Layer confirmed the jti is voided (or already was). */
  readonly envelope_voided: boolean;
  /** Present when a consumption won the race: the tool may have run. */
  readonly envelope_consumed?: true;
}

/**
 * Voids `call.envelope`; never throws. Anything but a confirmed `voided` (a timeout, a deny, an
 * answer of the wrong shape) reports `envelope_voided: false`.
 */
export async function voidEnvelope(
  executor: GateExecutor,
  call: ExecutionCall,
  why: { readonly code: DenialCode; readonly stage: string },
  deadlineMs: number,
): Promise<VoidReport> {
  try {
    const r = await withCancellableDeadline(
      (signal) => executor.void({ ...call, code: why.code, stage: why.stage }, signal),
      deadlineMs,
    );
    const v: unknown = r.status === 'ok' ? r.value : undefined;
    const outcome = typeof v === 'object' && v !== null ? (v as { outcome?: unknown }).outcome : undefined;
    if (outcome === 'voided') return { envelope_voided: true };
    if (outcome === 'consumed') return { envelope_voided: false, envelope_consumed: true };
    return { envelope_voided: false };
  } catch {
    return { envelope_voided: false };
  }
}
